// A run's artifacts, for the run page: the files its steps left in $ROTA_ARTIFACTS (step,
// path, size), each with a download, and the report the run kept when it ended (`report:`
// in its job), also offered beside the run's Report buttons as "kept report". A download
// fetches the bytes with the bearer token (never in a URL) and saves them from a blob
// under the file's own name.

import { api, authHeaders, problemOf, unreachable } from "./api.js";
import { h, mount, problemBox, enc, ACTIVE } from "./dom.js";

/** The step a run's kept report is listed under (rota_store::RUN_STEP): no job step has it. */
const KEPT_STEP = "@run";

/** Listings tried again after a run ended while watched: its report is kept just after. */
const KEPT_RETRIES = [1000, 2000, 4000];

/** "1.2 MiB": a size for people. */
function sizeText(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * The artifacts section of run `runId`: `update(run)` lists them again when the run's
 * status changed (steps keep files as their attempts end). `keptReport` is an element for
 * the run page's Report row: a download of the run's kept report, when it has one.
 */
export function artifactsSection(runId) {
  const box = h("section", { class: "card", id: "run-artifacts", hidden: true });
  const feedback = h("div", { "aria-live": "polite" });
  const keptReport = h("span", { id: "kept-report" });
  let lastStatus = "";
  let retry = null;

  async function download(artifact) {
    const path = artifact.path.split("/").map(enc).join("/");
    let res;
    try {
      res = await fetch(`/api/v1/runs/${enc(runId)}/artifacts/${enc(artifact.step)}/${path}`,
        { headers: authHeaders({ Accept: "application/octet-stream" }), cache: "no-store", credentials: "omit" });
    } catch (err) {
      mount(feedback, problemBox(unreachable(err)));
      return;
    }
    if (!res.ok) {
      mount(feedback, problemBox(await problemOf(res)));
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    const link = h("a", { href: url, download: artifact.path.split("/").pop() });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    mount(feedback);
  }

  /** Lists the artifacts; `retries` are the waits left for a kept report to appear. */
  async function list(retries) {
    clearTimeout(retry);
    let listed;
    try {
      listed = await api("GET", `/runs/${enc(runId)}/artifacts`);
    } catch (err) {
      box.hidden = false;
      mount(box, h("h2", {}, "Artifacts"), problemBox(err));
      return;
    }
    const kept = listed.find((a) => a.step === KEPT_STEP);
    mount(keptReport, kept
      ? h("button", { type: "button", class: "link", id: "kept-report-download", "data-path": kept.path,
        title: "the report kept when the run ended", onclick: () => download(kept) },
      "kept report (", kept.path.endsWith(".md") ? "Markdown" : "HTML", ")")
      : null);
    if (!kept && retries.length) {
      retry = setTimeout(() => box.isConnected && list(retries.slice(1)), retries[0]);
    }
    box.hidden = listed.length === 0;
    mount(box,
      h("h2", {}, "Artifacts"), feedback,
      h("table", { class: "list", id: "artifacts-table" },
        h("thead", {}, h("tr", {}, ["Step", "Path", "Size", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, listed.map((a) => h("tr", { "data-step": a.step, "data-path": a.path },
          h("td", { class: "mono" }, a.step, a.step === KEPT_STEP ? h("span", { class: "muted" }, " kept report") : null),
          h("td", { class: "mono" }, a.path),
          h("td", { class: "num" }, sizeText(a.size)),
          h("td", {}, h("button", { type: "button", class: "link", onclick: () => download(a) }, "Download")))))));
  }

  function update(run) {
    if (run.status === lastStatus) return;
    // A run seen ending here may keep its report a moment after: look again a few times.
    const ended = ACTIVE.has(lastStatus) && !ACTIVE.has(run.status);
    lastStatus = run.status;
    return list(ended ? KEPT_RETRIES : []);
  }

  return { box, keptReport, update };
}
