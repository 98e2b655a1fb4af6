// Building DOM nodes safely: data only ever becomes text nodes or values of a short list of
// harmless attributes, never markup. No module of the UI parses HTML strings.

const SAFE_ATTRS = new Set([
  "id", "class", "type", "name", "value", "placeholder", "title", "for", "role", "tabindex",
  "autocomplete", "spellcheck", "min", "max", "step", "rows", "cols", "colspan", "lang",
  "hidden", "disabled", "checked", "selected", "required", "readonly", "autofocus",
  "aria-label", "aria-live", "aria-current", "aria-pressed", "aria-hidden", "aria-expanded",
  "aria-describedby", "datetime", "scope", "inputmode", "list",
]);

/** Sets an attribute if it is harmless; `href` only for same-page links (`#/...`). */
function setAttr(el, key, value) {
  if (value === undefined || value === null || value === false) return;
  if (key === "href") {
    const v = String(value);
    if (v.startsWith("#/") || v === "#") el.setAttribute("href", v);
    return;
  }
  if (key.startsWith("data-") || SAFE_ATTRS.has(key)) {
    el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * `h("a", {href: "#/runs", class: "x", onclick: fn}, "text", child)`: an element with safe
 * attributes, `on*` event listeners and children (strings become text nodes).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else {
      setAttr(el, key, value);
    }
  }
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_ATTRS = new Set([
  "viewBox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "rx", "ry", "d", "class",
  "points", "transform", "text-anchor", "dominant-baseline", "role", "tabindex", "marker-end",
  "id", "orient", "markerWidth", "markerHeight", "refX", "refY", "aria-label", "focusable",
]);

/** An SVG element; same rules as `h`. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key.startsWith("data-") || SVG_ATTRS.has(key)) {
      if (value !== undefined && value !== null) el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An RFC 3339 time as local `YYYY-MM-DD HH:MM:SS`, or an em dash. */
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A `<time>` element showing local time, with the exact instant as its tooltip. */
export function timeEl(iso) {
  return h("time", { datetime: iso || undefined, title: iso || undefined }, fmtTime(iso));
}

/** Milliseconds as `850ms`, `12.3s`, `4m 05s`, `2h 03m`. */
export function fmtMs(ms) {
  if (ms < 0 || !Number.isFinite(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(1)}s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m}m ${String(Math.floor(sec % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

/** The duration from `start` to `end` (or to now while it lasts). */
export function duration(start, end) {
  if (!start) return "—";
  const a = new Date(start).getTime();
  const b = end ? new Date(end).getTime() : Date.now();
  return fmtMs(b - a);
}

/** Run states that may still change. */
export const ACTIVE = new Set(["planned", "awaiting_approval", "queued", "running"]);

/** A status badge (`succeeded`, `failed`, …), colored by CSS class. */
export function badge(status) {
  const text = String(status || "unknown");
  return h("span", { class: `badge st-${text.replace(/[^a-z_]/g, "")}` }, text.replace(/_/g, " "));
}

/** A problem (API or network) as a dismissible alert block. */
export function problemBox(err) {
  const title = err && err.title ? err.title : "Error";
  const detail = err && err.detail ? err.detail : String(err && err.message ? err.message : err);
  const items = (err && Array.isArray(err.problems)) ? err.problems : [];
  return h("div", { class: "problem", role: "alert" },
    h("strong", {}, title),
    detail ? h("span", {}, " — ", detail) : null,
    items.length ? h("ul", {}, items.map((p) => h("li", {}, typeof p === "string" ? p : (p.message || JSON.stringify(p))))) : null,
  );
}

/** `#/path?k=v` query values of the current hash. */
export function hashQuery() {
  const hash = location.hash || "";
  const i = hash.indexOf("?");
  return new URLSearchParams(i >= 0 ? hash.slice(i + 1) : "");
}

/** A hash link with query parameters, leaving out empty ones. */
export function hashLink(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  const qs = q.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

/** `encodeURIComponent` for path segments. */
export const enc = encodeURIComponent;
