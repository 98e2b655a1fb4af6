// Runs: newest first, filtered by namespace, job and status (kept in the address, so a
// filtered list can be linked), paged with "Load more", refreshed while a listed run is active.
// A run waiting at an `approval:` gate stands out, with a link to review it.

import { api } from "../api.js";
import { namespaceSelect, openFirstNamespace } from "../filters.js";
import { h, mount, problemBox, timeEl, badge, duration, hashQuery, hashLink, enc, ACTIVE } from "../dom.js";

const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out", "abandoned", "planned", "awaiting_approval"];

export function render(main) {
  let alive = true;
  let timer = null;
  const q = hashQuery();
  const filters = { namespace: q.get("namespace") || "", job: q.get("job") || "", status: q.get("status") || "" };
  document.title = "Runs · Rota";

  const nsSelect = namespaceSelect(filters.namespace, () => alive);
  const jobInput = h("input", { id: "f-job", name: "job", type: "search", "data-filter": "", placeholder: "Job id  ( / )", value: filters.job, "aria-label": "Job", autocomplete: "off", spellcheck: "false" });
  const statusSelect = h("select", { id: "f-status", name: "status", "aria-label": "Status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((st) => h("option", { value: st, selected: st === filters.status }, st.replace(/_/g, " "))));
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    location.hash = hashLink("/runs", { namespace: nsSelect.value, job: jobInput.value.trim(), status: statusSelect.value });
  } }, nsSelect, jobInput, statusSelect, h("button", { type: "submit" }, "Apply"));
  nsSelect.addEventListener("change", () => form.requestSubmit());
  statusSelect.addEventListener("change", () => form.requestSubmit());

  const body = h("tbody");
  const status = h("div", { "aria-live": "polite" });
  const more = h("div", { class: "more" });
  mount(main, h("div", { class: "page-head" }, h("h1", {}, "Runs"), form), status,
    h("table", { class: "list", id: "runs-table" },
      h("thead", {}, h("tr", {}, ["Run", "Job", "Status", "Trigger", "Created", "Duration", "Reason"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    more);

  function query(cursor, limit) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
    p.set("limit", String(limit));
    if (cursor) p.set("cursor", cursor);
    return `/runs?${p}`;
  }

  let runs = [];
  let nextCursor = null;

  function row(r) {
    return h("tr", { "data-run": r.id, "data-status": r.status },
      h("td", {}, h("a", { href: `#/runs/${enc(r.id)}`, class: "mono" }, r.id.slice(0, 12))),
      h("td", {}, h("a", { href: `#/jobs/${enc(r.namespace)}/${enc(r.job_id)}` }, r.job_id), h("span", { class: "muted small" }, ` ${r.namespace} · r${r.job_revision}`)),
      h("td", {}, badge(r.status), r.cancel_requested && ACTIVE.has(r.status) ? h("span", { class: "muted small" }, " cancelling") : null,
        r.status === "awaiting_approval" ? [" ", h("a", { href: `#/runs/${enc(r.id)}`, class: "small review-gate", title: "approve or reject its gate" }, "review")] : null),
      h("td", { class: "small" }, r.trigger, r.dry_run ? " (dry run)" : ""),
      h("td", {}, timeEl(r.created_at)),
      h("td", { class: "num" }, duration(r.started_at, r.finished_at)),
      h("td", { class: "small wrap" }, r.reason || ""));
  }

  function draw() {
    mount(body, runs.map(row));
    if (!runs.length) body.appendChild(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No runs match.")));
    mount(more, nextCursor ? h("button", { type: "button", id: "load-more", onclick: loadMore }, "Load more") : null);
  }

  function schedule() {
    clearTimeout(timer);
    if (alive && runs.some((r) => ACTIVE.has(r.status))) timer = setTimeout(refresh, 2000);
  }

  async function refresh() {
    try {
      const page = await api("GET", query(null, Math.min(Math.max(runs.length, 50), 500)));
      if (!alive) return;
      runs = page.items;
      if (runs.length < 500) nextCursor = page.next_cursor;
      mount(status);
      draw();
    } catch (err) {
      if (!alive) return;
      if (err.status === 403 && !filters.namespace) {
        // A token with roles in some namespaces only cannot list every run: show its first.
        if (await openFirstNamespace("/runs", filters, () => alive)) return;
      }
      mount(status, problemBox(err));
    }
    schedule();
  }

  async function loadMore() {
    try {
      const page = await api("GET", query(nextCursor, 50));
      if (!alive) return;
      runs = runs.concat(page.items);
      nextCursor = page.next_cursor;
      draw();
    } catch (err) {
      if (alive) mount(status, problemBox(err));
    }
  }

  refresh();
  return () => {
    alive = false;
    clearTimeout(timer);
  };
}
