// A run: its header, the DAG with live step states (polled every second while the run is
// active), the steps, live logs over SSE (resumed after a dropped connection, and once the
// run resumes after waiting at a gate, which ends the stream), and the
// Cancel / Retry actions when they apply (Resume, for a notebook step that failed at a
// cell); its `approval:` gates, with Approve / Reject while one awaits approval (gates.js);
// the files its steps kept, with downloads, and the report the run kept when it ended,
// beside its Report buttons (artifacts.js).

import { api, download } from "../api.js";
import { follow } from "../sse.js";
import { drawDag } from "../dag.js";
import { gatesSection } from "../gates.js";
import { artifactsSection } from "../artifacts.js";
import { h, mount, problemBox, timeEl, badge, duration, fmtTime, enc, ACTIVE } from "../dom.js";

/** Lines kept on the page; older ones are dropped (the API keeps them all). */
const MAX_LINES = 20000;

/** Step statuses a notebook step can be resumed from (`rota retry --resume`). */
const STOPPED_AT_A_CELL = new Set(["failed", "timed_out", "cancelled"]);

export function render(main, [runId]) {
  let alive = true;
  let pollTimer = null;
  let stopStream = null;
  // "live", "gate" (the server ended the stream while the run waits at a gate: it is
  // followed again, after the last line seen, once the run resumes) or "ended".
  let streamState = "live";
  let lastSeq = 0;
  let run = null;
  let lastRunJson = "";
  let lastActionsKey = "";
  /** The job's notebook steps, from its definition. */
  let notebookSteps = new Set();
  let selected = null;
  let updateDag = () => {};
  let autoscroll = true;
  let lineCount = 0;
  document.title = `Run ${runId.slice(0, 12)} · Rota`;

  const head = h("div", { class: "page-head" }, h("h1", {}, "Run ", h("span", { class: "mono" }, runId)));
  const status = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const summary = h("section", { class: "card run-summary", id: "run-summary" });
  const actions = h("div", { class: "actions", id: "run-actions" });
  const actionStatus = h("div", { "aria-live": "polite", id: "action-status" });
  const dagBox = h("div", { class: "dag-wrap", id: "run-dag" });
  const gates = gatesSection(runId, {
    onDecided: (updated) => {
      run = updated;
      drawRun();
      poll();
    },
    reload: () => poll(),
    isAlive: () => alive,
  });
  const artifacts = artifactsSection(runId);
  const stepsBody = h("tbody");
  const logBox = h("div", { class: "log", id: "log", role: "log", "aria-label": "run log", tabindex: "0" });
  const logState = h("span", { class: "muted small", id: "log-state" }, "connecting…");
  const filterNote = h("span", { id: "log-filter" });
  const tsToggle = h("input", { type: "checkbox", id: "show-ts" });
  const follow_ = h("button", { type: "button", id: "follow-log", hidden: true, onclick: () => {
    autoscroll = true;
    logBox.scrollTop = logBox.scrollHeight;
    follow_.hidden = true;
  } }, "Follow ↓");
  tsToggle.addEventListener("change", () => logBox.classList.toggle("show-ts", tsToggle.checked));
  logBox.addEventListener("scroll", () => {
    const atBottom = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 24;
    autoscroll = atBottom;
    follow_.hidden = atBottom;
  });

  mount(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs")),
    head, status, actionStatus, gates.box,
    h("div", { class: "grid-run" },
      summary,
      h("section", { class: "card" },
        h("div", { class: "section-head" }, h("h2", {}, "Steps"), actions),
        dagBox,
        h("table", { class: "list", id: "steps-table" },
          h("thead", {}, h("tr", {}, ["Step", "Status", "Attempt", "Exit", "Duration", "Reason"].map((t) => h("th", { scope: "col" }, t)))),
          stepsBody))),
    artifacts.box,
    h("section", { class: "card" },
      h("div", { class: "section-head" }, h("h2", {}, "Log"), filterNote,
        h("span", { class: "spacer" }),
        h("label", { class: "inline small" }, tsToggle, " timestamps"),
        follow_, logState),
      logBox));

  function selectStep(id) {
    selected = selected === id ? null : id;
    for (const line of logBox.children) line.hidden = selected !== null && line.dataset.step !== selected;
    mount(filterNote, selected
      ? h("span", { class: "chip" }, "step ", h("strong", {}, selected), " ",
        h("button", { type: "button", class: "link", id: "clear-step", onclick: () => selectStep(selected) }, "show all"))
      : null);
    if (run) updateDag(stepStatuses(run), selected);
    if (autoscroll) logBox.scrollTop = logBox.scrollHeight;
  }

  function stepStatuses(r) {
    return new Map((r.steps || []).map((st) => [st.id, st.status]));
  }

  function appendLine(line) {
    if (line.seq <= lastSeq) return;
    lastSeq = line.seq;
    const el = h("div", { class: `line ${line.stream === "stderr" ? "stderr" : ""}`, "data-step": line.step_id, "data-seq": String(line.seq) },
      h("span", { class: "ts", title: line.ts }, fmtTime(line.ts).slice(11)),
      h("span", { class: "step" }, line.step_id),
      line.stream === "stderr" ? h("span", { class: "tag", title: "stderr" }, "err") : null,
      h("span", { class: "text" }, line.text));
    if (selected !== null && line.step_id !== selected) el.hidden = true;
    logBox.appendChild(el);
    lineCount++;
    if (lineCount > MAX_LINES) {
      logBox.firstChild.remove();
      lineCount--;
    }
  }

  function drawActions() {
    const key = `${run.status}|${run.cancel_requested}`;
    if (key === lastActionsKey) return;
    lastActionsKey = key;
    const buttons = [];
    if (ACTIVE.has(run.status)) {
      buttons.push(h("button", { type: "button", class: "danger", id: "cancel-run", disabled: run.cancel_requested, onclick: cancel },
        run.cancel_requested ? "Cancelling…" : "Cancel"));
    } else {
      buttons.push(h("button", { type: "button", id: "retry-run", onclick: () => retry(null) }, "Retry"));
      const failed = (run.steps || []).find((st) => st.status !== "succeeded" && st.status !== "skipped");
      const from = h("select", { id: "retry-from", "aria-label": "Retry from step" },
        (run.steps || []).map((st) => h("option", { value: st.id, selected: failed && failed.id === st.id }, st.id)));
      buttons.push(h("span", { class: "retry-from" }, from,
        h("button", { type: "button", id: "retry-from-step", onclick: () => retry(from.value) }, "Retry from step")));
      // A notebook step that stopped at a cell can continue from there instead.
      if (failed && notebookSteps.has(failed.id) && STOPPED_AT_A_CELL.has(failed.status)) {
        buttons.push(h("button", {
          type: "button", id: "resume-notebook", onclick: () => retry(failed.id, true),
          title: "A fresh kernel replays the parameters and setup cells before the failed cell, then continues from it",
        }, `Resume ${failed.id} from its failed cell`));
      }
    }
    mount(actions, buttons);
  }

  async function cancel() {
    mount(actionStatus);
    try {
      await api("POST", `/runs/${enc(runId)}/cancel`);
      await poll();
    } catch (err) {
      mount(actionStatus, problemBox(err));
    }
  }

  async function retry(from, resume = false) {
    mount(actionStatus);
    try {
      const body = from ? (resume ? { from, resume } : { from }) : {};
      const next = await api("POST", `/runs/${enc(runId)}/retry`, body);
      location.hash = `#/runs/${enc(next.id)}`;
    } catch (err) {
      mount(actionStatus, problemBox(err));
    }
  }

  function drawRun() {
    // While the run is active the header redraws each poll, so durations keep counting.
    const json = JSON.stringify(run);
    if (json === lastRunJson && !ACTIVE.has(run.status)) return;
    lastRunJson = json;
    document.title = `${run.job_id} ${run.status} · Rota`;
    mount(head, h("h1", {}, h("a", { href: `#/jobs/${enc(run.namespace)}/${enc(run.job_id)}` }, run.job_id), " ",
      h("span", { class: "mono muted small" }, run.id)), badge(run.status));
    const params = Object.entries(run.params || {});
    mount(summary,
      h("dl", { class: "facts" },
        h("dt", {}, "Status"), h("dd", { id: "run-status", "data-status": run.status }, badge(run.status), run.cancel_requested && ACTIVE.has(run.status) ? " cancel requested" : ""),
        run.reason ? [h("dt", {}, "Reason"), h("dd", { id: "run-reason", class: run.status === "awaiting_approval" ? "" : "reason" }, run.reason)] : null,
        h("dt", {}, "Job"), h("dd", {}, `${run.namespace} / ${run.job_id}`, h("span", { class: "muted" }, ` revision ${run.job_revision}`)),
        h("dt", {}, "Trigger"), h("dd", {}, run.trigger, run.dry_run ? " (dry run)" : "", run.scheduled_at ? [" for ", timeEl(run.scheduled_at)] : null),
        run.started_by ? [h("dt", {}, "Started by"), h("dd", { class: "mono small" }, run.started_by)] : null,
        run.retry_of ? [h("dt", {}, "Retry of"), h("dd", {}, h("a", { href: `#/runs/${enc(run.retry_of)}`, class: "mono" }, run.retry_of))] : null,
        run.parent ? [h("dt", {}, "Started by"), h("dd", {}, "step ", run.parent.step, " of run ", h("a", { href: `#/runs/${enc(run.parent.run)}`, class: "mono" }, run.parent.run))] : null,
        (run.steps || []).filter((st) => st.child_run).map((st) =>
          [h("dt", {}, "Child run"), h("dd", {}, h("a", { href: `#/runs/${enc(st.child_run)}`, class: "mono" }, st.child_run), " (step ", st.id, ")")]),
        h("dt", {}, "Created"), h("dd", {}, timeEl(run.created_at)),
        h("dt", {}, "Started"), h("dd", {}, timeEl(run.started_at)),
        h("dt", {}, "Finished"), h("dd", {}, timeEl(run.finished_at)),
        h("dt", {}, "Duration"), h("dd", {}, duration(run.started_at, run.finished_at)),
        h("dt", {}, "Report"), h("dd", { id: "run-report" },
          [["html", "HTML"], ["md", "Markdown"]].map(([format, label]) =>
            h("button", { type: "button", class: "link", "data-format": format,
              onclick: () => download(`/runs/${enc(run.id)}/report?format=${format}`, `run-${run.id}.${format}`)
                .catch((err) => mount(actionStatus, problemBox(err))) }, label, " ")),
          artifacts.keptReport),
        h("dt", {}, "Params"), h("dd", {}, params.length
          ? h("ul", { class: "params" }, params.map(([k, v]) => h("li", {}, h("span", { class: "mono" }, k), " = ", h("span", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v)))))
          : h("span", { class: "muted" }, "none"))));
    mount(stepsBody, (run.steps || []).map((st) => h("tr", { "data-step": st.id, "data-status": st.status },
      h("td", {}, h("button", { type: "button", class: "link mono", onclick: () => selectStep(st.id), title: "show only this step's log" }, st.id)),
      h("td", {}, badge(st.status)),
      h("td", { class: "num" }, st.attempts > 1 ? `${st.attempt} of ${st.attempts}` : String(st.attempt)),
      h("td", { class: "num" }, st.exit_code === null || st.exit_code === undefined ? "" : String(st.exit_code)),
      h("td", { class: "num" }, duration(st.started_at, st.finished_at)),
      h("td", { class: "small wrap" }, st.reason || ""))));
    updateDag(stepStatuses(run), selected);
    gates.update(run);
    artifacts.update(run);
    if (streamState === "gate" && run.status !== "awaiting_approval") followLog();
    drawActions();
  }

  async function poll() {
    clearTimeout(pollTimer);
    try {
      run = await api("GET", `/runs/${enc(runId)}`);
      if (!alive) return;
      mount(status);
      drawRun();
    } catch (err) {
      if (!alive) return;
      mount(status, problemBox(err));
    }
    if (alive && (!run || ACTIVE.has(run.status))) pollTimer = setTimeout(poll, 1000);
  }

  (async () => {
    try {
      run = await api("GET", `/runs/${enc(runId)}`);
    } catch (err) {
      if (alive) mount(status, problemBox(err));
      return;
    }
    if (!alive) return;
    mount(status);
    // The DAG's edges come from the job's definition; its nodes are the run's own steps.
    let needs = new Map();
    try {
      const job = await api("GET", `/namespaces/${enc(run.namespace)}/jobs/${enc(run.job_id)}`);
      const steps = (job.definition && job.definition.steps) || [];
      needs = new Map(steps.map((st) => [st.id, st.needs || []]));
      notebookSteps = new Set(steps.filter((st) => st.kind && st.kind.notebook).map((st) => st.id));
    } catch {
      /* a deleted job still shows its run, without edges */
    }
    if (!alive) return;
    updateDag = drawDag(dagBox, (run.steps || []).map((st) => ({ id: st.id, needs: needs.get(st.id) || [] })), { onSelect: selectStep });
    drawRun();
    if (ACTIVE.has(run.status)) pollTimer = setTimeout(poll, 1000);

    followLog();
  })();

  function followLog() {
    streamState = "live";
    let atGate = false;
    if (stopStream) stopStream();
    stopStream = follow(`/runs/${enc(runId)}/logs/stream?after=${lastSeq}`, {
      onEvent: (ev) => {
        if (ev.event === "end") {
          try {
            atGate = JSON.parse(ev.data).status === "awaiting_approval";
          } catch {
            atGate = false;
          }
          return;
        }
        let line;
        try {
          line = JSON.parse(ev.data);
        } catch {
          return;
        }
        appendLine(line);
        if (autoscroll) logBox.scrollTop = logBox.scrollHeight;
      },
      onState: (state, problem) => {
        mount(logState, state === "live" ? "live" : `reconnecting… ${problem ? problem.detail || problem.title : ""}`);
        logState.dataset.state = state;
      },
      onEnd: () => {
        if (atGate) {
          streamState = "gate";
          mount(logState, `waiting for approval · ${lineCount} lines`);
          logState.dataset.state = "gate";
          poll();
          return;
        }
        streamState = "ended";
        mount(logState, `ended · ${lineCount} lines`);
        logState.dataset.state = "ended";
        if (!lineCount) logBox.appendChild(h("div", { class: "line muted" }, "No log lines."));
        poll();
      },
      onError: (problem) => {
        mount(logState);
        logBox.appendChild(problemBox(problem));
      },
    });
  }

  return () => {
    alive = false;
    clearTimeout(pollTimer);
    if (stopStream) stopStream();
  };
}
