// Sign-in: the user pastes an API token; it is checked with one API call and kept in
// sessionStorage for this tab only. A rejected token shows the server's own message.

import { api, setToken } from "../api.js";
import { h, mount, problemBox } from "../dom.js";

export function render(main, { problem, onSignedIn }) {
  const input = h("input", {
    id: "token", name: "token", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, placeholder: "rota_…", "aria-describedby": "token-help",
  });
  const status = h("div", { id: "signin-status", "aria-live": "polite" }, problem ? problemBox(problem) : null);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin card", onsubmit: submit },
    h("h1", {}, "Sign in to Rota"),
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help", class: "muted" },
      "Paste a token from ", h("code", {}, "rota tokens create"),
      " (the first admin token is in ", h("code", {}, "$ROTA_HOME/admin.token"),
      "). It is kept only in this tab and sent as a bearer header."),
    button,
    status,
  );

  async function submit(e) {
    e.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    button.disabled = true;
    setToken(value);
    try {
      await api("GET", "/namespaces?limit=1", undefined, { quiet401: true });
      input.value = "";
      onSignedIn();
    } catch (err) {
      setToken(null);
      mount(status, problemBox(err));
      input.select();
    } finally {
      button.disabled = false;
    }
  }

  mount(main, form);
  input.focus();
}
