// The audit log: who did what to which target, from where, with what result, oldest
// first and paged; "Verify chain" checks the hash chain on the server.

import { api } from "../api.js";
import { h, mount, problemBox, timeEl, badge, enc } from "../dom.js";

/** The target as a link when it names a run or a job, else as text. */
function targetCell(target) {
  const text = String(target || "");
  const run = text.match(/^run\/([0-9a-z]+)$/);
  if (run) return h("a", { href: `#/runs/${enc(run[1])}` }, text);
  const job = text.match(/^job\/([^/]+)\/([^/]+)$/);
  if (job) return h("a", { href: `#/jobs/${enc(job[1])}/${enc(job[2])}` }, text);
  return text;
}

export function render(main) {
  let alive = true;
  document.title = "Audit · Rota";
  const body = h("tbody");
  const status = h("div", { "aria-live": "polite" });
  const more = h("div", { class: "more" });
  const verifyResult = h("div", { "aria-live": "polite", id: "verify-result" });
  const verify = h("button", { type: "button", id: "verify-chain", onclick: async () => {
    verify.disabled = true;
    mount(verifyResult, h("span", { class: "muted" }, "Verifying…"));
    try {
      const v = await api("GET", "/audit/verify");
      mount(verifyResult, v.intact
        ? h("p", { class: "ok", "data-intact": "true" }, "✓ The chain holds: every entry is as it was appended, in order, none missing.")
        : h("div", { class: "problem", role: "alert", "data-intact": "false" },
          h("strong", {}, "The chain is broken"),
          v.broken_entry !== null && v.broken_entry !== undefined ? ` at entry ${v.broken_entry}` : "",
          v.problem ? `: ${v.problem}` : ""));
    } catch (err) {
      mount(verifyResult, problemBox(err));
    } finally {
      verify.disabled = false;
    }
  } }, "Verify chain");

  mount(main, h("div", { class: "page-head" }, h("h1", {}, "Audit log"), verify), verifyResult, status,
    h("table", { class: "list", id: "audit-table" },
      h("thead", {}, h("tr", {}, ["#", "Time", "Actor", "Action", "Target", "Source", "Result"].map((t) => h("th", { scope: "col" }, t)))),
      body),
    more);

  async function load(after) {
    try {
      const page = await api("GET", `/audit?limit=100${after ? `&after=${after}` : ""}`);
      if (!alive) return;
      for (const e of page.items) {
        body.appendChild(h("tr", { "data-entry": String(e.id) },
          h("td", { class: "num muted" }, String(e.id)),
          h("td", {}, timeEl(e.at)),
          h("td", { class: "small mono" }, e.actor),
          h("td", { class: "mono" }, e.action),
          h("td", { class: "small mono wrap" }, targetCell(e.target)),
          h("td", { class: "small" }, e.source || ""),
          h("td", {}, e.result === "ok" ? h("span", { class: "muted" }, "ok") : badge(e.result))));
      }
      if (!body.children.length) body.appendChild(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No entries.")));
      const full = page.items.length === 100;
      mount(more, full && page.next_after
        ? h("button", { type: "button", id: "audit-more", onclick: () => load(page.next_after) }, "Load more")
        : null);
    } catch (err) {
      if (alive) mount(status, problemBox(err));
    }
  }
  load(0);
  return () => {
    alive = false;
  };
}
