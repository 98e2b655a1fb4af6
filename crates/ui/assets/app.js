// The shell: hash routing (`#/runs/<id>`), the navigation bar, sign-in state and keyboard
// shortcuts. Each page module exports `render(main, params)` returning an optional cleanup.

import { api, token, setToken, setUnauthorizedHandler } from "./api.js";
import { h, mount } from "./dom.js";
import * as signin from "./pages/signin.js";
import * as jobs from "./pages/jobs.js";
import * as job from "./pages/job.js";
import * as runs from "./pages/runs.js";
import * as run from "./pages/run.js";
import * as secrets from "./pages/secrets.js";
import * as audit from "./pages/audit.js";
import * as plans from "./pages/plans.js";
import * as plan from "./pages/plan.js";

const ROUTES = [
  [/^\/jobs$/, jobs, "jobs"],
  [/^\/jobs\/([^/]+)\/([^/]+)$/, job, "jobs"],
  [/^\/runs$/, runs, "runs"],
  [/^\/runs\/([^/]+)$/, run, "runs"],
  [/^\/plans$/, plans, "plans"],
  [/^\/plans\/([^/]+)$/, plan, "plans"],
  [/^\/secrets$/, secrets, "secrets"],
  [/^\/audit$/, audit, "audit"],
];

const state = { cleanup: null, authMode: "unknown", signInProblem: null };
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const session = document.getElementById("session");

function currentPath() {
  const hash = location.hash.replace(/^#/, "") || "/jobs";
  const q = hash.indexOf("?");
  return q >= 0 ? hash.slice(0, q) : hash;
}

function renderSession() {
  if (state.authMode === "token") {
    mount(session, h("button", { type: "button", class: "link", id: "sign-out", onclick: signOut }, "Sign out"));
  } else if (state.authMode === "none") {
    mount(session, h("span", { class: "muted", title: "the server runs with --auth none" }, "no sign-in required"));
  } else {
    mount(session);
  }
}

function signOut() {
  setToken(null);
  state.authMode = "signed-out";
  state.signInProblem = null;
  route();
}

/** Asks the server whether a token is needed: a call without one that succeeds means no. */
async function detectAuth() {
  if (token()) {
    state.authMode = "token";
    return;
  }
  try {
    await api("GET", "/namespaces?limit=1", undefined, { quiet401: true });
    state.authMode = "none";
  } catch (err) {
    state.authMode = "signed-out";
    if (err.status !== 401) state.signInProblem = err;
  }
}

function route() {
  if (state.cleanup) {
    try {
      state.cleanup();
    } catch {
      /* a page's cleanup must not stop navigation */
    }
    state.cleanup = null;
  }
  renderSession();
  const path = currentPath();
  if (state.authMode === "signed-out") {
    nav.hidden = true;
    document.title = "Sign in · Rota";
    state.cleanup = signin.render(main, {
      problem: state.signInProblem,
      onSignedIn: () => {
        state.authMode = "token";
        state.signInProblem = null;
        route();
      },
    });
    return;
  }
  nav.hidden = false;
  for (const [re, page, section] of ROUTES) {
    const m = path.match(re);
    if (m) {
      for (const a of nav.querySelectorAll("a")) {
        if (a.dataset.section === section) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
      }
      const params = m.slice(1).map((p) => decodeURIComponent(p));
      state.cleanup = page.render(main, params) || null;
      main.focus({ preventScroll: true });
      return;
    }
  }
  mount(main, h("h1", {}, "Not found"), h("p", {}, "No page at this address. ", h("a", { href: "#/jobs" }, "Go to jobs")));
}

setUnauthorizedHandler((problem) => {
  if (state.authMode === "none") return;
  setToken(null);
  state.authMode = "signed-out";
  state.signInProblem = problem;
  route();
});

// Keyboard: `/` focuses the page's filter, `g j` / `g r` / `g p` / `g s` / `g a` switch pages.
let pendingG = 0;
document.addEventListener("keydown", (e) => {
  const t = e.target;
  const typing = t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "/") {
    const filter = document.querySelector("[data-filter]");
    if (filter) {
      e.preventDefault();
      filter.focus();
      filter.select && filter.select();
    }
    return;
  }
  if (e.key === "g") {
    pendingG = Date.now();
    return;
  }
  if (pendingG && Date.now() - pendingG < 1500) {
    const to = { j: "#/jobs", r: "#/runs", p: "#/plans", s: "#/secrets", a: "#/audit" }[e.key];
    if (to) {
      e.preventDefault();
      location.hash = to;
    }
  }
  pendingG = 0;
});

window.addEventListener("hashchange", route);

(async () => {
  await detectAuth();
  if (!location.hash) history.replaceState(null, "", "#/jobs");
  route();
})();
