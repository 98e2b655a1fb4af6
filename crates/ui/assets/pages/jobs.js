// Jobs: every job the token can see, across namespaces, with its latest revision, triggers,
// next fire time and paused state; a filter box narrows the list as you type.

import { api, all } from "../api.js";
import { h, mount, problemBox, timeEl, hashQuery, enc, badge } from "../dom.js";

/** A short text for one trigger of a job definition (`{cron: {...}}`, `{interval: ...}`). */
export function triggerText(trigger) {
  if (!trigger || typeof trigger !== "object") return String(trigger);
  const [kind, spec] = Object.entries(trigger)[0] || ["?", null];
  if (spec && typeof spec === "object") {
    const main = spec.expr ?? spec.every ?? spec.job ?? spec.at ?? spec.path ?? "";
    return main ? `${kind} ${typeof main === "object" ? JSON.stringify(main) : main}` : kind;
  }
  return spec === null || spec === undefined ? kind : `${kind} ${spec}`;
}

/** Runs `fn` over `items` with at most `n` calls in flight. */
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }));
  return out;
}

export function render(main) {
  let alive = true;
  const filter = h("input", {
    type: "search", id: "job-filter", "data-filter": "", placeholder: "Filter jobs  ( / )",
    "aria-label": "Filter jobs", value: hashQuery().get("q") || "", autocomplete: "off",
  });
  const body = h("tbody");
  const status = h("div", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading jobs…"));
  const table = h("table", { class: "list", id: "jobs-table" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col" }, "Namespace"), h("th", { scope: "col" }, "Job"),
      h("th", { scope: "col" }, "Description"), h("th", { scope: "col" }, "Rev"),
      h("th", { scope: "col" }, "Triggers"), h("th", { scope: "col" }, "Next fire"),
      h("th", { scope: "col" }, "Last run"), h("th", { scope: "col" }, "State"))),
    body);
  mount(main, h("div", { class: "page-head" }, h("h1", {}, "Jobs"), filter), status, table);
  document.title = "Jobs · Rota";

  let rows = [];
  function applyFilter() {
    const q = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const r of rows) {
      const hit = !q || r.text.includes(q);
      r.tr.hidden = !hit;
      if (hit) shown++;
    }
    if (rows.length) mount(status, shown === rows.length ? null : h("p", { class: "muted" }, `${shown} of ${rows.length} jobs`));
  }
  filter.addEventListener("input", applyFilter);
  filter.addEventListener("change", applyFilter);
  filter.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      const first = rows.find((r) => !r.tr.hidden);
      if (first) location.hash = first.href;
    } else if (e.key === "Escape") {
      filter.value = "";
      applyFilter();
      filter.blur();
    }
  });

  (async () => {
    try {
      const namespaces = await all("/namespaces");
      const lists = await Promise.all(namespaces.map((ns) => all(`/namespaces/${enc(ns.name)}/jobs`)));
      const summaries = lists.flat();
      if (!alive) return;
      if (!summaries.length) {
        mount(status, h("p", { class: "empty" }, "No jobs yet. Put job files in the directory given to ", h("code", {}, "rota serve --jobs"), "."));
        return;
      }
      rows = summaries.map((s) => {
        const href = `#/jobs/${enc(s.namespace)}/${enc(s.id)}`;
        const desc = h("td", { class: "desc" });
        const trig = h("td", { class: "mono small" });
        const next = h("td", {}, "…");
        const last = h("td");
        const state = h("td");
        const tr = h("tr", {},
          h("td", {}, s.namespace),
          h("td", {}, h("a", { href, class: "strong" }, s.id)),
          desc, h("td", { class: "num" }, String(s.revision)), trig, next, last, state);
        body.appendChild(tr);
        return { s, tr, href, desc, trig, next, last, state, text: `${s.namespace}/${s.id}`.toLowerCase() };
      });
      applyFilter();
      await pool(rows, 6, async (r) => {
        const base = `/namespaces/${enc(r.s.namespace)}/jobs/${enc(r.s.id)}`;
        const [detail, sched, runs] = await Promise.all([
          api("GET", base).catch(() => null),
          api("GET", `${base}/schedule?count=1`).catch(() => null),
          api("GET", `/runs?namespace=${enc(r.s.namespace)}&job=${enc(r.s.id)}&limit=1`).catch(() => null),
        ]);
        const latest = runs && runs.items && runs.items[0];
        mount(r.last, latest
          ? h("a", { href: `#/runs/${enc(latest.id)}`, title: latest.created_at }, badge(latest.status))
          : h("span", { class: "muted" }, "never"));
        if (!alive) return;
        const def = detail && detail.definition ? detail.definition : {};
        const description = def.description || "";
        mount(r.desc, description);
        const triggers = sched && Array.isArray(sched.triggers) ? sched.triggers : (def.triggers || []).map(triggerText);
        mount(r.trig, triggers.length ? triggers.join(", ") : h("span", { class: "muted" }, "manual"));
        const first = sched && sched.next && sched.next[0];
        mount(r.next, first ? timeEl(first.at) : h("span", { class: "muted" }, "—"));
        if (sched && sched.paused) mount(r.state, h("span", { class: "badge st-paused" }, "paused"));
        r.text = `${r.s.namespace}/${r.s.id} ${description} ${triggers.join(" ")}`.toLowerCase();
      });
      applyFilter();
    } catch (err) {
      if (alive) mount(status, problemBox(err));
    }
  })();

  return () => {
    alive = false;
  };
}
