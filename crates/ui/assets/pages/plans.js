// Plans: newest first, filtered by namespace and status (kept in the address), paged with
// "Load more"; each row shows the approvals so far against the quorum and when it expires.

import { api } from "../api.js";
import { namespaceSelect, openFirstNamespace } from "../filters.js";
import { h, mount, problemBox, timeEl, badge, hashQuery, hashLink, enc } from "../dom.js";

/** Every plan status the API knows. */
export const PLAN_STATUSES = ["awaiting_approval", "approved", "rejected", "expired", "applied"];

/** "1 / 2" approvals against the quorum, or a dash for a job without approval rules. */
export function approvalsText(plan) {
  if (!plan.approval) return "not required";
  const approvals = (plan.decisions || []).filter((d) => d.decision === "approve").length;
  return `${approvals} / ${plan.approval.quorum}`;
}

export function render(main) {
  let alive = true;
  const q = hashQuery();
  const filters = { namespace: q.get("namespace") || "", status: q.get("status") || "" };
  document.title = "Plans · Rota";

  const nsSelect = namespaceSelect(filters.namespace, () => alive);
  const statusSelect = h("select", { id: "f-status", name: "status", "aria-label": "Status" },
    h("option", { value: "" }, "Any status"),
    PLAN_STATUSES.map((st) => h("option", { value: st, selected: st === filters.status }, st.replace(/_/g, " "))));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    location.hash = hashLink("/plans", { namespace: nsSelect.value, status: statusSelect.value });
  } }, nsSelect, statusSelect, h("button", { type: "submit" }, "Apply"));
  nsSelect.addEventListener("change", () => form.requestSubmit());
  statusSelect.addEventListener("change", () => form.requestSubmit());

  const body = h("tbody");
  const status = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  const more = h("div", { class: "more" });
  mount(main, h("div", { class: "page-head" }, h("h1", {}, "Plans"), form), status,
    h("table", { class: "list", id: "plans-table" },
      h("thead", {}, h("tr", {}, ["Plan", "Job", "Status", "Approvals", "Created by", "Created", "Expires"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    more);

  function query(cursor) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
    p.set("limit", "50");
    if (cursor) p.set("cursor", cursor);
    return `/plans?${p}`;
  }

  function row(p) {
    return h("tr", { "data-plan": p.id, "data-status": p.status },
      h("td", {}, h("a", { href: `#/plans/${enc(p.id)}`, class: "mono" }, p.id.slice(0, 12))),
      h("td", {}, h("a", { href: `#/jobs/${enc(p.namespace)}/${enc(p.job_id)}` }, p.job_id),
        h("span", { class: "muted small" }, ` ${p.namespace} · r${p.job_revision}`)),
      h("td", {}, badge(p.status)),
      h("td", { class: "num", "data-approvals": "" }, approvalsText(p)),
      h("td", { class: "small wrap" }, p.created_by),
      h("td", {}, timeEl(p.created_at)),
      h("td", {}, p.expires_at ? timeEl(p.expires_at) : h("span", { class: "muted" }, "never")));
  }

  async function load(cursor) {
    try {
      const page = await api("GET", query(cursor));
      if (!alive) return;
      mount(status);
      if (!cursor) mount(body);
      for (const p of page.items) body.appendChild(row(p));
      if (!body.children.length) body.appendChild(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No plans match.")));
      mount(more, page.next_cursor
        ? h("button", { type: "button", id: "load-more", onclick: () => load(page.next_cursor) }, "Load more")
        : null);
    } catch (err) {
      if (!alive) return;
      if (err.status === 403 && !filters.namespace && !cursor) {
        // A token with roles in some namespaces only cannot list every plan: show its first.
        if (await openFirstNamespace("/plans", filters, () => alive)) return;
      }
      mount(status, problemBox(err));
    }
  }

  load(null);
  return () => {
    alive = false;
  };
}
