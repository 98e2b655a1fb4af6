// A job's steps as an SVG DAG, layered left to right by depth through `needs`. Nodes are
// colored by step status (CSS classes), focusable, and clickable (to filter the log).

import { s, mount } from "./dom.js";

const W = 160;
const H = 38;
const GAP_X = 56;
const GAP_Y = 14;
const PAD = 8;

/** Depth of each node: 0 for roots, else 1 + the deepest of its needs (cycles are cut). */
function depths(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const visiting = new Set();
  function visit(id) {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;
    visiting.add(id);
    const n = byId.get(id);
    let d = 0;
    for (const need of (n && n.needs) || []) if (byId.has(need)) d = Math.max(d, visit(need) + 1);
    visiting.delete(id);
    depth.set(id, d);
    return d;
  }
  for (const n of nodes) visit(n.id);
  return depth;
}

function label(text) {
  return text.length > 20 ? `${text.slice(0, 19)}…` : text;
}

/**
 * Draws the DAG into `container`. `opts.onSelect(id)` makes nodes clickable. Returns
 * `update(statuses, selected)` which recolors nodes (statuses: Map or object id → status).
 */
export function drawDag(container, nodes, opts = {}) {
  if (!nodes.length) {
    mount(container);
    return () => {};
  }
  const depth = depths(nodes);
  const columns = [];
  for (const n of nodes) {
    const d = depth.get(n.id) || 0;
    (columns[d] = columns[d] || []).push(n);
  }
  const pos = new Map();
  const rows = Math.max(...columns.map((c) => (c ? c.length : 0)));
  const height = PAD * 2 + rows * H + (rows - 1) * GAP_Y;
  columns.forEach((col, d) => {
    if (!col) return;
    const colHeight = col.length * H + (col.length - 1) * GAP_Y;
    const top = (height - colHeight) / 2;
    col.forEach((n, i) => pos.set(n.id, { x: PAD + d * (W + GAP_X), y: top + i * (H + GAP_Y) }));
  });
  const width = PAD * 2 + columns.length * W + (columns.length - 1) * GAP_X;

  const edges = [];
  for (const n of nodes) {
    const to = pos.get(n.id);
    for (const need of n.needs || []) {
      const from = pos.get(need);
      if (!from) continue;
      const x1 = from.x + W;
      const y1 = from.y + H / 2;
      const x2 = to.x;
      const y2 = to.y + H / 2;
      const mx = (x1 + x2) / 2;
      edges.push(s("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 4},${y2}`, "marker-end": "url(#arrow)" }));
    }
  }
  const groups = new Map();
  const nodeEls = nodes.map((n) => {
    const p = pos.get(n.id);
    const text = s("text", { x: p.x + 26, y: p.y + H / 2, "dominant-baseline": "central", class: "node-label" }, label(n.id));
    const g = s("g", {
      class: "node st-pending", "data-step": n.id, role: opts.onSelect ? "button" : "img", tabindex: opts.onSelect ? "0" : undefined,
      "aria-label": `step ${n.id}`,
    },
    s("title", {}, n.id),
    s("rect", { x: p.x, y: p.y, width: W, height: H, rx: 6, ry: 6 }),
    s("circle", { class: "dot", cx: p.x + 13, cy: p.y + H / 2, r: 5 }),
    text);
    if (opts.onSelect) {
      g.addEventListener("click", () => opts.onSelect(n.id));
      g.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          opts.onSelect(n.id);
        }
      });
    }
    groups.set(n.id, { g, title: g.firstChild });
    return g;
  });
  const svg = s("svg", { class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "group", "aria-label": "steps of the job" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "8", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto" },
      s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))),
    edges, nodeEls);
  mount(container, svg);

  return function update(statuses, selected) {
    const get = (id) => (statuses instanceof Map ? statuses.get(id) : statuses && statuses[id]);
    for (const [id, { g, title }] of groups) {
      const st = String(get(id) || "pending").replace(/[^a-z_]/g, "");
      g.setAttribute("class", `node st-${st}${selected === id ? " selected" : ""}`);
      g.setAttribute("data-status", st);
      g.setAttribute("aria-label", `step ${id}: ${st.replace(/_/g, " ")}`);
      title.textContent = `${id}: ${st.replace(/_/g, " ")}`;
    }
  };
}
