// Server-sent events over `fetch` (EventSource cannot send an Authorization header):
// parses text/event-stream, remembers the last event id and reconnects with
// `Last-Event-ID` after a dropped connection, until the stream ends or is stopped.

import { authHeaders, problemOf, unreachable, unauthorized } from "./api.js";

/**
 * Follows `/api/v1${path}`. `onEvent({event, id, data})` gets each event; `onEnd()` is
 * called once the server closes after an `end` event; `onError(problem)` when the stream
 * cannot be (re)opened for a reason retrying will not fix (4xx). Returns `stop()`.
 */
export function follow(path, { onEvent, onEnd, onError, onState }) {
  const ctrl = new AbortController();
  let lastId = null;
  let ended = false;
  let stopped = false;

  async function once() {
    const headers = authHeaders({ Accept: "text/event-stream" });
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    let res;
    try {
      res = await fetch(`/api/v1${path}`, { headers, cache: "no-store", credentials: "omit", signal: ctrl.signal });
    } catch (err) {
      if (err && err.name === "AbortError") return "stopped";
      onState && onState("reconnecting", unreachable(err));
      return "retry";
    }
    if (!res.ok) {
      const problem = await problemOf(res);
      if (res.status === 401) unauthorized(problem);
      if (res.status >= 400 && res.status < 500) {
        onError && onError(problem);
        return "fatal";
      }
      onState && onState("reconnecting", problem);
      return "retry";
    }
    onState && onState("live");
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let ev = { event: "message", data: [], id: null };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf[nl] === "\r" && buf[nl + 1] === "\n" ? 2 : 1));
          if (line === "") {
            if (ev.data.length) {
              if (ev.id !== null) lastId = ev.id;
              const out = { event: ev.event, id: ev.id, data: ev.data.join("\n") };
              if (out.event === "end") ended = true;
              onEvent(out);
            }
            ev = { event: "message", data: [], id: null };
            continue;
          }
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? "" : line.slice(colon + 1);
          if (val.startsWith(" ")) val = val.slice(1);
          if (field === "data") ev.data.push(val);
          else if (field === "event") ev.event = val;
          else if (field === "id" && !val.includes("\0")) ev.id = val;
        }
      }
    } catch (err) {
      if (err && err.name === "AbortError") return "stopped";
      onState && onState("reconnecting", unreachable(err));
      return "retry";
    }
    return ended ? "ended" : "retry";
  }

  (async () => {
    let delay = 500;
    while (!stopped) {
      const outcome = await once();
      if (outcome === "ended") {
        onEnd && onEnd();
        return;
      }
      if (outcome !== "retry" || stopped) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();

  return () => {
    stopped = true;
    ctrl.abort();
  };
}
