// A plan: everything a reviewer needs to decide (the job and revision, the resolved
// parameters, each step as it will run, the secrets with their versions, the hash, the
// approval rules and the decisions so far), and Approve / Reject / Apply when they apply.
// Decisions send the plan's hash, so they bind to what the reviewer saw; the server judges
// every action and its refusal (problem detail) is shown as it is.

import { api } from "../api.js";
import { h, mount, problemBox, timeEl, badge, enc } from "../dom.js";
import { approvalsText } from "./plans.js";

/** Seconds as `4h`, `1h 30m`, `45m`, `90s`. */
function fmtSeconds(total) {
  const parts = [];
  const d = Math.floor(total / 86400);
  const hr = Math.floor((total % 86400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d) parts.push(`${d}d`);
  if (hr) parts.push(`${hr}h`);
  if (m) parts.push(`${m}m`);
  if (sec || !parts.length) parts.push(`${sec}s`);
  return parts.join(" ");
}

/** A parameter value as the user would type it: strings bare, anything else as JSON. */
function valueText(v) {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** One step card: number, id, kind, what it runs, its env, needs and condition, and the full definition. */
function stepView(step, index) {
  const r = step.resolved || {};
  const env = r.env && typeof r.env === "object" ? Object.entries(r.env) : [];
  const facts = [];
  if (Array.isArray(r.needs) && r.needs.length) facts.push(h("span", {}, "needs ", h("span", { class: "mono" }, r.needs.join(", "))));
  if (r.if_expr) facts.push(h("span", {}, "if ", h("span", { class: "mono" }, r.if_expr)));
  if (r.when && r.when !== "success") facts.push(h("span", {}, "when ", h("span", { class: "mono" }, String(r.when))));
  if (r.workdir) facts.push(h("span", {}, "in ", h("span", { class: "mono" }, r.workdir)));
  return h("li", { class: "plan-step", "data-step": step.id, "data-kind": step.kind },
    h("div", { class: "section-head" },
      h("span", { class: "muted" }, `${index + 1}.`),
      h("strong", { class: "mono" }, step.id),
      h("span", { class: "chip" }, step.kind),
      facts.length ? h("span", { class: "muted small" }, facts.map((f, i) => [i ? " · " : "", f])) : null),
    h("pre", { class: "source step-text" }, String(step.summary ?? "")),
    env.length
      ? h("pre", { class: "source small step-env" }, env.map(([k, v]) => `${k}=${v}`).join("\n"))
      : null,
    h("details", {}, h("summary", { class: "small" }, "Full definition"),
      h("pre", { class: "source small" }, JSON.stringify(r, null, 2))));
}

export function render(main, [planId]) {
  let alive = true;
  let busy = false;
  document.title = `Plan ${planId.slice(0, 12)} · Rota`;
  const head = h("div", { class: "page-head" }, h("h1", {}, "Plan ", h("span", { class: "mono" }, planId)));
  const status = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const actionStatus = h("div", { "aria-live": "polite", id: "plan-action-status" });
  const content = h("div", { class: "plan-page" });
  mount(main, h("p", { class: "crumbs" }, h("a", { href: "#/plans" }, "Plans")), head, status, actionStatus, content);

  async function load() {
    try {
      const plan = await api("GET", `/plans/${enc(planId)}`);
      if (alive) show(plan);
    } catch (err) {
      if (alive) mount(status, problemBox(err));
    }
  }

  /** Runs one action, showing the server's refusal; the page is reloaded either way. */
  async function act(button, fn) {
    if (busy) return;
    busy = true;
    button.disabled = true;
    mount(actionStatus);
    try {
      await fn();
    } catch (err) {
      if (!alive) return;
      mount(actionStatus, problemBox(err));
      button.disabled = false;
      // The refusal may come from a change of status (expired, decided by someone else).
      await load();
    } finally {
      busy = false;
    }
  }

  function actions(plan) {
    const box = h("section", { class: "card", id: "plan-actions" }, h("h2", {}, "Decision"));
    if (plan.status === "awaiting_approval") {
      const comment = h("textarea", { id: "decision-comment", name: "comment", rows: 2, placeholder: "Why (optional)", spellcheck: "true" });
      const decide = (verb) => async () => {
        const body = { hash: plan.hash };
        const text = comment.value.trim();
        if (text) body.comment = text;
        const updated = await api("POST", `/plans/${enc(plan.id)}/${verb}`, body);
        if (!alive) return;
        mount(actionStatus, h("p", { class: "ok", id: "decision-done" }, verb === "approve" ? "Approved." : "Rejected."));
        show(updated);
      };
      const approve = h("button", { type: "button", class: "primary", id: "approve-plan" }, "Approve");
      const reject = h("button", { type: "button", class: "danger", id: "reject-plan" }, "Reject");
      approve.addEventListener("click", () => act(approve, decide("approve")));
      reject.addEventListener("click", () => act(reject, decide("reject")));
      box.append(
        h("p", { class: "small muted" }, "Your decision binds to hash ", h("span", { class: "mono" }, plan.hash.slice(0, 12)),
          ": if the plan changed since this page loaded, the server refuses it."),
        h("div", { class: "field" }, h("label", { for: "decision-comment" }, "Comment"), comment),
        h("div", { class: "actions-left" }, approve, reject));
    } else if (plan.status === "approved") {
      const apply = h("button", { type: "button", class: "primary", id: "apply-plan" }, "Apply");
      apply.addEventListener("click", () => act(apply, async () => {
        const run = await api("POST", `/plans/${enc(plan.id)}/apply`);
        if (alive) location.hash = `#/runs/${enc(run.id)}`;
      }));
      box.append(
        h("p", {}, "Approved. Applying checks again that the job, the parameters and the secrets' versions are unchanged, then queues the run."),
        h("div", { class: "actions-left" }, apply));
    } else if (plan.status === "applied") {
      box.append(h("p", {}, "Applied", plan.applied_by ? ` by ${plan.applied_by}` : "", plan.applied_at ? " at " : "",
        plan.applied_at ? timeEl(plan.applied_at) : null, ": ",
        plan.run_id ? h("a", { href: `#/runs/${enc(plan.run_id)}`, id: "plan-run", class: "mono" }, plan.run_id) : "—"));
    } else {
      box.append(h("p", { class: "muted" }, `This plan is ${plan.status.replace(/_/g, " ")}: no more decisions or apply. Make a new plan from the job page.`));
    }
    return box;
  }

  function show(plan) {
    mount(status);
    document.title = `Plan ${plan.job_id} · Rota`;
    const jobHref = `#/jobs/${enc(plan.namespace)}/${enc(plan.job_id)}`;
    mount(head,
      h("h1", {}, "Plan ", h("span", { class: "muted" }, plan.namespace, " / "), h("a", { href: jobHref }, plan.job_id)),
      h("span", { id: "plan-status", "data-status": plan.status }, badge(plan.status)));

    const rules = plan.approval;
    const decisions = plan.decisions || [];
    const params = Object.entries(plan.params || {});
    const hashEl = h("code", { class: "mono hash", id: "plan-hash", tabindex: "0", title: "The plan's SHA-256; approvals bind to it" }, plan.hash);
    const copy = h("button", { type: "button", class: "link small", id: "copy-hash", onclick: async () => {
      const sel = getSelection();
      const range = document.createRange();
      range.selectNodeContents(hashEl);
      sel.removeAllRanges();
      sel.addRange(range);
      try {
        await navigator.clipboard.writeText(plan.hash);
        copy.textContent = "copied";
      } catch {
        copy.textContent = "selected: press Ctrl+C";
      }
    } }, "copy");

    mount(content,
      h("div", { class: "grid2" },
        h("section", { class: "card", id: "plan-summary" },
          h("dl", { class: "facts" },
            h("dt", {}, "Plan"), h("dd", { class: "mono small", id: "plan-id" }, plan.id),
            h("dt", {}, "Job"), h("dd", {}, h("a", { href: jobHref, id: "plan-job" }, `${plan.namespace} / ${plan.job_id}`)),
            h("dt", {}, "Revision"), h("dd", { id: "plan-revision" }, String(plan.job_revision)),
            h("dt", {}, "Status"), h("dd", {}, badge(plan.status),
              plan.status === "awaiting_approval" && plan.approvals_needed ? h("span", { class: "muted small" }, ` ${plan.approvals_needed} more approval(s) needed`) : null),
            h("dt", {}, "Created"), h("dd", {}, timeEl(plan.created_at), " by ", h("span", { class: "mono small" }, plan.created_by)),
            h("dt", {}, "Expires"), h("dd", {}, plan.expires_at ? timeEl(plan.expires_at) : "never"),
            h("dt", {}, "Dry run"), h("dd", {}, plan.dry_run_id
              ? [h("a", { href: `#/runs/${enc(plan.dry_run_id)}`, id: "dry-run-link", class: "mono" }, plan.dry_run_id),
                h("span", { class: "muted small" }, " (its log shows what each step would do)")]
              : h("span", { class: "muted" }, "none")),
            plan.run_id ? [h("dt", {}, "Run"), h("dd", {}, h("a", { href: `#/runs/${enc(plan.run_id)}`, class: "mono" }, plan.run_id))] : null,
            h("dt", {}, "Hash"), h("dd", {}, hashEl, " ", copy))),
        actions(plan)),
      h("section", { class: "card" }, h("h2", {}, "Parameters"),
        params.length
          ? h("table", { class: "list", id: "plan-params" },
            h("thead", {}, h("tr", {}, ["Name", "Value"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, params.map(([k, v]) => h("tr", {}, h("td", { class: "mono" }, k), h("td", { class: "mono wrap" }, valueText(v))))))
          : h("p", { class: "muted" }, "No parameters.")),
      h("section", { class: "card" }, h("h2", {}, "Steps, in order"),
        h("ol", { class: "plan-steps", id: "plan-steps" }, (plan.steps || []).map(stepView))),
      h("section", { class: "card" }, h("h2", {}, "Secrets"),
        plan.secrets && plan.secrets.length
          ? h("table", { class: "list", id: "plan-secrets" },
            h("thead", {}, h("tr", {}, ["Name", "Version"].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", {}, plan.secrets.map((s) => h("tr", {}, h("td", { class: "mono" }, s.name),
              h("td", {}, s.version === null || s.version === undefined ? h("span", { class: "muted" }, "none stored (from the environment)") : `version ${s.version}`)))))
          : h("p", { class: "muted" }, "The job uses no secrets.")),
      h("section", { class: "card", id: "plan-rules" }, h("h2", {}, "Approval"),
        rules
          ? h("dl", { class: "facts" },
            h("dt", {}, "Approvers"), h("dd", { class: "mono" }, rules.approvers.join(", ")),
            h("dt", {}, "Quorum"), h("dd", {}, String(rules.quorum), h("span", { class: "muted small" }, ` (approvals so far: ${approvalsText(plan)})`)),
            h("dt", {}, "Self-approval"), h("dd", {}, rules.allow_self ? "allowed" : "not allowed: the plan's creator may not approve it"),
            h("dt", {}, "Open for"), h("dd", {}, rules.expires_seconds === null || rules.expires_seconds === undefined ? "no limit" : fmtSeconds(rules.expires_seconds)))
          : h("p", { class: "muted" }, "The job has no approval rules: the plan was approved when it was made."),
        h("h3", {}, "Decisions"),
        h("table", { class: "list", id: "plan-decisions" },
          h("thead", {}, h("tr", {}, ["Actor", "Decision", "At", "Comment", "Hash"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, decisions.length
            ? decisions.map((d) => h("tr", { "data-decision": d.decision },
              h("td", { class: "mono small wrap" }, d.actor),
              h("td", {}, badge(d.decision === "approve" ? "approved" : "rejected")),
              h("td", {}, timeEl(d.at)),
              h("td", { class: "wrap" }, d.comment || ""),
              h("td", { class: "mono small", title: d.hash }, d.hash.slice(0, 12), d.hash === plan.hash ? "" : " (other)")))
            : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No decisions yet."))))));
  }

  load();
  return () => {
    alive = false;
  };
}
