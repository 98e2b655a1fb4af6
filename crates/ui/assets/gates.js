// A run's `approval:` gates, for the run page: each gate's step, status, message, approvals
// against the quorum, approvers, expiry, hash and decisions, and, while it awaits approval,
// Approve / Reject with a comment (a rejection's reason), and Skip at a failed step's
// question (`on_failure: ask`, a gate named STEP#failed-N: approve retries the step, skip
// skips it, reject aborts it). A decision sends the gate's step
// and the hash shown, so it binds to what the approver saw; the server judges it and its
// refusal (problem detail) is shown as it is.

import { api } from "./api.js";
import { h, mount, problemBox, timeEl, badge, enc } from "./dom.js";

/** Whether `gate` holds a failed step's question (`STEP#failed-N`), the one kind skipped. */
const isFailureGate = (gate) => /#failed-\d+$/.test(gate.step);

/** What a decision of `verb` is shown as, done and in the decisions table. */
const DONE = { approve: ["Approved.", "approved"], reject: ["Rejected.", "rejected"], skip: ["Skipped.", "skipped"] };

/** "1 / 2": approvals so far against the quorum. */
export function gateApprovals(gate) {
  const approvals = (gate.decisions || []).filter((d) => d.decision === "approve").length;
  return `${approvals} / ${gate.quorum}`;
}

/**
 * The gates section of run `runId`: `update(run)` redraws it when the run's gates changed
 * (keeping what was typed in a comment), `onDecided(run)` gets the run a decision returned,
 * `reload()` is called after a refusal (the gate may have been decided meanwhile).
 */
export function gatesSection(runId, { onDecided, reload, isAlive }) {
  const box = h("section", { class: "card", id: "run-gates", hidden: true });
  const comments = new Map();
  // Each gate's feedback (done, or the server's refusal) outlives a redraw of its gate.
  const feedbacks = new Map();
  const feedbackOf = (step) => {
    if (!feedbacks.has(step)) feedbacks.set(step, h("div", { class: "gate-feedback", "aria-live": "polite" }));
    return feedbacks.get(step);
  };
  let lastKey = "";
  let busy = false;

  async function decide(gate, verb, comment, feedback, buttons) {
    if (busy) return;
    busy = true;
    for (const b of buttons) b.disabled = true;
    mount(feedback);
    const body = { step: gate.step, hash: gate.hash };
    const text = comment.value.trim();
    if (text) body.comment = text;
    try {
      const run = await api("POST", `/runs/${enc(runId)}/${verb}`, body);
      if (!isAlive()) return;
      comments.delete(gate.step);
      mount(feedback, h("p", { class: "ok gate-done" }, DONE[verb][0]));
      onDecided(run);
    } catch (err) {
      if (!isAlive()) return;
      mount(feedback, problemBox(err));
      for (const b of buttons) b.disabled = false;
      await reload();
    } finally {
      busy = false;
    }
  }

  function decisionForm(gate, feedback) {
    const id = `gate-comment-${gate.step}`;
    const comment = h("textarea", { id, class: "gate-comment", name: "comment", rows: 2, placeholder: "Why (optional; a rejection's reason)", spellcheck: "true" });
    comment.value = comments.get(gate.step) || "";
    comment.addEventListener("input", () => comments.set(gate.step, comment.value));
    const failure = isFailureGate(gate);
    const approve = h("button", { type: "button", class: "primary gate-approve", "data-step": gate.step }, failure ? "Retry" : "Approve");
    const reject = h("button", { type: "button", class: "danger gate-reject", "data-step": gate.step }, failure ? "Abort" : "Reject");
    const buttons = [approve, reject];
    approve.addEventListener("click", () => decide(gate, "approve", comment, feedback, buttons));
    reject.addEventListener("click", () => decide(gate, "reject", comment, feedback, buttons));
    if (failure) {
      const skip = h("button", { type: "button", class: "gate-skip", "data-step": gate.step }, "Skip");
      skip.addEventListener("click", () => decide(gate, "skip", comment, feedback, buttons));
      buttons.push(skip);
    }
    return [
      h("p", { class: "small muted" }, "Your decision binds to hash ", h("span", { class: "mono" }, gate.hash.slice(0, 12)),
        ": if what follows the gate changed, the server refuses it."),
      h("div", { class: "field" }, h("label", { for: id }, "Comment or reason"), comment),
      h("div", { class: "actions-left" }, buttons),
    ];
  }

  function gateView(gate, run) {
    const decisions = gate.decisions || [];
    const open = gate.status === "awaiting_approval";
    const feedback = feedbackOf(gate.step);
    const self = gate.allow_self ? "the run's starter may approve" : "not the run's starter";
    return h("div", { class: "gate", "data-step": gate.step, "data-status": gate.status },
      h("div", { class: "section-head" },
        h("strong", { class: "mono" }, gate.step), badge(gate.status),
        h("span", { class: "muted small", "data-approvals": "" }, `approvals ${gateApprovals(gate)}`)),
      gate.message ? h("p", { class: "gate-message lead" }, gate.message) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "Approvers"), h("dd", {}, h("span", { class: "mono gate-approvers" }, gate.approvers.join(", ")),
          h("span", { class: "muted small" }, ` (${self}${run.started_by ? `: ${run.started_by}` : ""})`)),
        h("dt", {}, "Quorum"), h("dd", {}, String(gate.quorum)),
        h("dt", {}, "Opened"), h("dd", {}, timeEl(gate.opened_at)),
        h("dt", {}, "Expires"), h("dd", {}, gate.expires_at ? timeEl(gate.expires_at) : "never"),
        gate.decided_at ? [h("dt", {}, "Decided"), h("dd", {}, timeEl(gate.decided_at))] : null,
        h("dt", {}, "Hash"), h("dd", {}, h("code", { class: "mono gate-hash", title: gate.hash }, gate.hash.slice(0, 12)))),
      h("table", { class: "list gate-decisions" },
        h("thead", {}, h("tr", {}, ["Actor", "Decision", "At", "Comment"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, decisions.length
          ? decisions.map((d) => h("tr", { "data-decision": d.decision },
            h("td", { class: "mono small wrap" }, d.actor),
            h("td", {}, badge((DONE[d.decision] || DONE.reject)[1])),
            h("td", {}, timeEl(d.at)),
            h("td", { class: "wrap gate-reason" }, d.comment || "")))
          : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No decisions yet.")))),
      feedback,
      open ? decisionForm(gate, feedback) : null);
  }

  function update(run) {
    const gates = run.gates || [];
    const key = JSON.stringify([gates, run.started_by]);
    if (key === lastKey) return;
    lastKey = key;
    box.hidden = !gates.length;
    mount(box, h("h2", {}, "Approvals"), gates.map((g) => gateView(g, run)));
  }

  return { box, update };
}
