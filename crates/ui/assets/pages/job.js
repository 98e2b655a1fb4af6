// A job: its definition (steps as a table and a DAG), a Run form built from its declared
// parameters with a Plan button beside Run (a job with approval rules runs only through
// plans), the next fire times, pause/resume, the schedule history with skipped and missed
// occurrences and their reasons, and its revisions.

import { api } from "../api.js";
import { h, mount, problemBox, timeEl, badge, enc } from "../dom.js";
import { drawDag } from "../dag.js";

/** A one-line summary of a step's kind (`sh: echo hi`). */
function kindText(kind) {
  if (!kind || typeof kind !== "object") return String(kind ?? "");
  const [name, spec] = Object.entries(kind)[0] || ["?", null];
  let detail = "";
  if (spec && typeof spec === "object") {
    detail = spec.command ?? spec.script ?? spec.path ?? spec.url ?? spec.notebook ?? "";
    if (typeof detail !== "string") detail = JSON.stringify(detail);
  } else if (spec !== null && spec !== undefined) {
    detail = String(spec);
  }
  const first = detail.split("\n")[0];
  return `${name}${first ? `: ${first}` : ""}${detail.includes("\n") ? " …" : ""}`;
}

/** One form field for a declared parameter; returns {field, read()} (read throws on bad input). */
function paramField(p) {
  const id = `param-${p.name}`;
  const required = p.default === null || p.default === undefined;
  const choices = Array.isArray(p.choices) ? p.choices : null;
  let input;
  let read;
  if (choices) {
    input = h("select", { id, name: p.name },
      required ? h("option", { value: "" }, "— choose —") : null,
      choices.map((c) => h("option", { value: String(c), selected: String(c) === String(p.default) }, String(c))));
    read = () => input.value === "" ? undefined : input.value;
  } else if (p.ty === "bool") {
    input = h("input", { id, name: p.name, type: "checkbox", checked: p.default === true });
    read = () => input.checked;
  } else if (p.ty === "int" || p.ty === "float") {
    input = h("input", { id, name: p.name, type: "number", step: p.ty === "int" ? "1" : "any", value: required ? "" : String(p.default), inputmode: p.ty === "int" ? "numeric" : "decimal" });
    read = () => {
      if (input.value.trim() === "") return undefined;
      const n = Number(input.value);
      if (!Number.isFinite(n) || (p.ty === "int" && !Number.isInteger(n))) throw new Error(`${p.name}: not a valid ${p.ty}`);
      return n;
    };
  } else if (p.ty === "list" || p.ty === "map") {
    input = h("textarea", { id, name: p.name, rows: 2, spellcheck: "false", placeholder: p.ty === "list" ? '["a", "b"]' : '{"key": "value"}' });
    input.value = required ? "" : JSON.stringify(p.default);
    read = () => {
      if (input.value.trim() === "") return undefined;
      try {
        return JSON.parse(input.value);
      } catch {
        throw new Error(`${p.name}: not valid JSON`);
      }
    };
  } else {
    input = h("input", { id, name: p.name, type: "text", value: required ? "" : String(p.default), spellcheck: "false", autocomplete: "off" });
    read = () => (input.value === "" && required ? undefined : input.value);
  }
  if (p.ty === "bool") {
    const field = h("div", { class: "field inline" }, input,
      h("label", { for: id }, p.name, " ", h("span", { class: "muted small" }, "bool")),
      p.help ? h("span", { class: "muted small" }, ` — ${p.help}`) : null);
    return { field, read, name: p.name };
  }
  const field = h("div", { class: "field" },
    h("label", { for: id }, p.name, " ", h("span", { class: "muted small" }, p.ty, required ? " · required" : "")),
    input,
    p.help ? h("span", { class: "muted small" }, p.help) : null);
  return { field, read, name: p.name };
}

export function render(main, [namespace, jobId]) {
  let alive = true;
  const base = `/namespaces/${enc(namespace)}/jobs/${enc(jobId)}`;
  document.title = `${jobId} · Jobs · Rota`;
  const head = h("div", { class: "page-head" }, h("h1", {}, h("span", { class: "muted" }, namespace, " / "), jobId));
  const status = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const content = h("div", { class: "job-page" });
  mount(main, h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Jobs")), head, status, content);

  const scheduleBox = h("section", { class: "card", id: "schedule" });
  const historyBody = h("tbody");
  const historyMore = h("div");

  async function loadSchedule() {
    try {
      const sched = await api("GET", `${base}/schedule?count=5`);
      if (!alive) return;
      const paused = !!sched.paused;
      const toggle = h("button", { type: "button", id: paused ? "resume" : "pause", onclick: async () => {
        toggle.disabled = true;
        try {
          await api("POST", `${base}/schedule/${paused ? "resume" : "pause"}`);
          await loadSchedule();
        } catch (err) {
          scheduleBox.appendChild(problemBox(err));
          toggle.disabled = false;
        }
      } }, paused ? "Resume schedule" : "Pause schedule");
      mount(scheduleBox,
        h("div", { class: "section-head" }, h("h2", {}, "Schedule"),
          paused ? h("span", { class: "badge st-paused" }, "paused") : null, toggle),
        sched.triggers && sched.triggers.length
          ? h("p", {}, "Triggers: ", h("span", { class: "mono" }, sched.triggers.join(", ")))
          : h("p", { class: "muted" }, "No time triggers: runs start manually, by webhook or after another job."),
        sched.resume_from ? h("p", { class: "muted" }, "Resumed from ", timeEl(sched.resume_from), "; earlier occurrences are skipped.") : null,
        sched.next && sched.next.length
          ? h("div", {}, h("h3", {}, paused ? "Next fire times (once resumed)" : "Next fire times"),
            h("ol", { class: "fires" }, sched.next.map((f) => h("li", {}, timeEl(f.at), " ", h("span", { class: "muted small" }, f.trigger)))))
          : null);
    } catch (err) {
      if (alive) mount(scheduleBox, h("h2", {}, "Schedule"), problemBox(err));
    }
  }

  async function loadHistory(cursor) {
    try {
      const page = await api("GET", `${base}/schedule/history?limit=20${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      if (!alive) return;
      for (const o of page.items) {
        historyBody.appendChild(h("tr", {},
          h("td", {}, timeEl(o.scheduled_at)),
          h("td", {}, badge(o.outcome)),
          h("td", {}, o.run_id ? h("a", { href: `#/runs/${enc(o.run_id)}`, class: "mono" }, o.run_id) : h("span", { class: "muted" }, "—")),
          h("td", {}, o.reason || ""),
          h("td", { class: "mono small" }, o.trigger)));
      }
      if (!historyBody.children.length) historyBody.appendChild(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No occurrences recorded yet.")));
      mount(historyMore, page.next_cursor
        ? h("button", { type: "button", onclick: () => loadHistory(page.next_cursor) }, "Load older occurrences")
        : null);
    } catch (err) {
      if (alive) mount(historyMore, problemBox(err));
    }
  }

  (async () => {
    let job;
    try {
      job = await api("GET", base);
    } catch (err) {
      if (alive) mount(status, problemBox(err));
      return;
    }
    if (!alive) return;
    mount(status);
    const def = job.definition || {};
    const params = Array.isArray(def.params) ? def.params : [];
    const steps = Array.isArray(def.steps) ? def.steps : [];

    // The Run form; its Plan button makes a plan of the same parameters instead.
    const fields = params.map(paramField);
    const gated = !!def.approval;
    const runStatus = h("div", { "aria-live": "polite", id: "run-status-box" });
    const dry = h("input", { type: "checkbox", id: "dry-run", name: "dry_run" });
    // `rota run --yes`: the steps that ask `confirm:` questions, confirmed now by the signed-in
    // token (the server checks it may); unchecked, each waits for a decision as a gate.
    const questions = steps.filter((st) => st.confirm).map((st) => `${st.id}: ${st.confirm}`);
    const confirm = h("input", { type: "checkbox", id: "confirm-steps", name: "confirm" });
    const runButton = h("button", { type: "submit", class: gated ? "" : "primary", id: "run-job", disabled: gated,
      "aria-describedby": gated ? "run-needs-plan" : undefined,
      title: gated ? "This job has approval rules: runs go through a plan" : undefined }, "Run");
    const planButton = h("button", { type: "button", class: gated ? "primary" : "", id: "plan-job",
      title: "Resolve the job with these parameters for review, approval and apply" }, "Plan");

    /** The form's values by name, or null after showing why they are invalid. */
    function values() {
      const out = {};
      try {
        for (const f of fields) {
          const v = f.read();
          if (v !== undefined) out[f.name] = v;
        }
      } catch (err) {
        mount(runStatus, problemBox({ title: "Invalid parameter", detail: err.message }));
        return null;
      }
      return out;
    }

    planButton.addEventListener("click", async () => {
      const vals = values();
      if (!vals) return;
      planButton.disabled = true;
      try {
        const plan = await api("POST", `${base}/plans`, { params: vals, dry_run: dry.checked });
        location.hash = `#/plans/${enc(plan.id)}`;
      } catch (err) {
        mount(runStatus, problemBox(err));
        planButton.disabled = false;
      }
    });

    const runForm = h("form", { class: "card run-form", id: "run-form", onsubmit: async (e) => {
      e.preventDefault();
      if (gated) return;
      const vals = values();
      if (!vals) return;
      runButton.disabled = true;
      try {
        const body = { params: vals, dry_run: dry.checked };
        if (confirm.checked) body.confirm = true;
        const run = await api("POST", `${base}/runs`, body);
        location.hash = `#/runs/${enc(run.id)}`;
      } catch (err) {
        mount(runStatus, problemBox(err));
        runButton.disabled = false;
      }
    } },
    h("h2", {}, "Run"),
    gated
      ? h("p", { class: "note small", id: "run-needs-plan" },
        "This job has approval rules (", h("span", { class: "mono" }, def.approval.approvers.join(", ")),
        `, quorum ${def.approval.quorum}): runs go through a plan. Make a plan, have it approved, then apply it.`)
      : null,
    fields.length ? fields.map((f) => f.field) : h("p", { class: "muted" }, "This job declares no parameters."),
    h("div", { class: "field inline" }, dry, h("label", { for: "dry-run" }, gated ? "Dry run (with the plan)" : "Dry run (plan only)")),
    questions.length && !gated
      ? h("div", { class: "field inline" }, confirm,
        h("label", { for: "confirm-steps", title: questions.join("\n") },
          `Confirm its ${questions.length} confirm: step(s) now, as you (else each waits for a decision)`))
      : null,
    h("div", { class: "run-buttons" }, runButton, planButton,
      h("a", { href: `#/plans?namespace=${enc(namespace)}`, class: "small" }, "Plans →")),
    runStatus);

    const stepRows = steps.map((st) => h("tr", {},
      h("td", { class: "mono" }, st.id),
      h("td", { class: "mono small wrap" }, kindText(st.kind)),
      h("td", { class: "mono small" }, (st.needs || []).join(", ")),
      h("td", { class: "small" }, st.when && st.when !== "success" ? st.when : "", st.if_expr ? ` if ${st.if_expr}` : ""),
      h("td", { class: "small" }, st.retry && st.retry.attempts > 1 ? `${st.retry.attempts} attempts` : "")));

    const revisionsBox = h("section", { class: "card" }, h("h2", {}, "Revisions"), h("p", { class: "muted" }, "Loading…"));
    const dagBox = h("div", { class: "dag-wrap" });

    mount(head,
      h("h1", {}, h("span", { class: "muted" }, namespace, " / "), jobId),
      h("span", { class: "muted" }, `revision ${job.revision}`));
    mount(content,
      def.description ? h("p", { class: "lead", id: "job-description" }, def.description) : null,
      h("div", { class: "grid2" },
        runForm,
        h("div", {}, scheduleBox)),
      h("section", { class: "card" }, h("h2", {}, "Steps"), dagBox,
        h("table", { class: "list" },
          h("thead", {}, h("tr", {}, ["Step", "Kind", "Needs", "Condition", "Retry"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, stepRows)),
        h("details", {}, h("summary", {}, "Source", job.source_path ? ` (${job.source_path})` : ""), h("pre", { class: "source" }, job.source || ""))),
      h("section", { class: "card" }, h("h2", {}, "Schedule history"),
        h("table", { class: "list", id: "history" },
          h("thead", {}, h("tr", {}, ["Due", "Outcome", "Run", "Reason", "Trigger"].map((t) => h("th", { scope: "col" }, t)))),
          historyBody),
        historyMore),
      revisionsBox,
      h("p", {}, h("a", { href: `#/runs?namespace=${enc(namespace)}&job=${enc(jobId)}` }, "All runs of this job →")));
    drawDag(dagBox, steps.map((st) => ({ id: st.id, needs: st.needs || [] })), {});

    loadSchedule();
    loadHistory(null);
    try {
      const revs = await api("GET", `${base}/revisions?limit=20`);
      if (!alive) return;
      mount(revisionsBox, h("h2", {}, "Revisions"),
        h("table", { class: "list" },
          h("thead", {}, h("tr", {}, ["Rev", "Saved", "Hash", "From"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, revs.items.map((r) => h("tr", {},
            h("td", { class: "num" }, String(r.revision)), h("td", {}, timeEl(r.created_at)),
            h("td", { class: "mono small", title: r.hash }, String(r.hash).slice(0, 12)),
            h("td", { class: "small" }, r.source_path || "API"))))));
    } catch (err) {
      if (alive) mount(revisionsBox, h("h2", {}, "Revisions"), problemBox(err));
    }
  })();

  return () => {
    alive = false;
  };
}
