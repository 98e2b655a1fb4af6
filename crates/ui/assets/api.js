// The one door to `/api/v1`: the bearer token (sessionStorage only, never in a URL), JSON
// requests, and errors as problems ({status, title, detail}) whatever went wrong.

const KEY = "rota.token";

/** The token of this tab, or null. */
export function token() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

/** Keeps the token for this tab only (gone when the tab closes). */
export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** An error answer of the API, or the server being unreachable (status 0). */
export class ApiError extends Error {
  constructor(status, title, detail, problems) {
    super(detail ? `${title}: ${detail}` : title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problems = problems;
  }
}

/** Called with the problem when the server answers 401 (the token is missing or wrong). */
let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Reports a 401 met outside `api()` (the log stream) so the UI returns to sign-in. */
export function unauthorized(problem) {
  onUnauthorized(problem);
}

/** Headers of every API request: the bearer token when there is one. */
export function authHeaders(extra = {}) {
  const headers = { Accept: "application/json", ...extra };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  return headers;
}

/** Reads an error response as a problem. */
export async function problemOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (body && typeof body === "object" && body.title) {
    return new ApiError(res.status, String(body.title), body.detail ? String(body.detail) : "", body.problems);
  }
  return new ApiError(res.status, `HTTP ${res.status}`, res.statusText || "");
}

/** The error for a request that never got an answer. */
export function unreachable(err) {
  return new ApiError(0, "Server unreachable", `the Rota server did not answer (${err && err.message ? err.message : err})`);
}

/**
 * `api("GET", "/runs")`: calls `/api/v1/...`, returns the parsed JSON (null for 204),
 * throws an ApiError. `opts.quiet401` skips the sign-in redirect (for probing).
 */
export async function api(method, path, body, opts = {}) {
  const init = { method, headers: authHeaders(), cache: "no-store", credentials: "omit", signal: opts.signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw unreachable(err);
  }
  if (!res.ok) {
    const problem = await problemOf(res);
    if (res.status === 401 && !opts.quiet401) onUnauthorized(problem);
    throw problem;
  }
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Downloads the text at `path` (e.g. a run's report) as the file `name`: fetched with the
 * tab's token (never put in a URL), saved through a short-lived blob link.
 */
export async function download(path, name) {
  let res;
  try {
    res = await fetch(`/api/v1${path}`, { headers: authHeaders({ Accept: "*/*" }), cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw unreachable(err);
  }
  if (!res.ok) {
    const problem = await problemOf(res);
    if (res.status === 401) onUnauthorized(problem);
    throw problem;
  }
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Every item of a cursor-paged list (`items`, `next_cursor`), up to `max` items. */
export async function all(path, max = 2000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
