// Secrets of a namespace: names, versions and who changed them when; never a value. A
// write-only form sets a new value (cleared after sending); delete asks for confirmation.

import { api, all } from "../api.js";
import { h, mount, problemBox, timeEl, hashQuery, hashLink, enc } from "../dom.js";

export function render(main) {
  let alive = true;
  const chosen = hashQuery().get("namespace");
  const namespace = chosen || "default";
  document.title = "Secrets · Rota";
  const nsSelect = h("select", { id: "secrets-namespace", "aria-label": "Namespace" }, h("option", { value: namespace, selected: true }, namespace));
  nsSelect.addEventListener("change", () => {
    location.hash = hashLink("/secrets", { namespace: nsSelect.value });
  });
  const status = h("div", { "aria-live": "polite", id: "secrets-status" });
  const body = h("tbody");
  const nameInput = h("input", { id: "secret-name", name: "name", type: "text", required: true, autocomplete: "off", spellcheck: "false", placeholder: "DB_PASSWORD" });
  // A password field by default (nothing readable over a shoulder); a multi-line value
  // (a key, a certificate) switches to a text area.
  let valueInput = h("input", { id: "secret-value", name: "value", type: "password", required: true, autocomplete: "off", spellcheck: "false", placeholder: "the value (write-only)" });
  const multi = h("input", { type: "checkbox", id: "secret-multiline" });
  multi.addEventListener("change", () => {
    const next = multi.checked
      ? h("textarea", { id: "secret-value", name: "value", rows: 4, required: true, autocomplete: "off", spellcheck: "false", placeholder: "the value (write-only)" })
      : h("input", { id: "secret-value", name: "value", type: "password", required: true, autocomplete: "off", spellcheck: "false", placeholder: "the value (write-only)" });
    next.value = valueInput.value;
    valueInput.replaceWith(next);
    valueInput = next;
  });
  const formStatus = h("div", { "aria-live": "polite", id: "secret-form-status" });
  const form = h("form", { class: "card", id: "secret-form", autocomplete: "off", onsubmit: async (e) => {
    e.preventDefault();
    const name = nameInput.value.trim();
    const value = valueInput.value;
    if (!name || !value) return;
    try {
      const saved = await api("PUT", `/namespaces/${enc(namespace)}/secrets/${enc(name)}`, { value });
      valueInput.value = "";
      nameInput.value = "";
      mount(formStatus, h("p", { class: "ok" }, `Saved ${saved.name} version ${saved.version}.`));
      load();
    } catch (err) {
      valueInput.value = "";
      mount(formStatus, problemBox(err));
    }
  } },
  h("h2", {}, "Set a secret"),
  h("div", { class: "field" }, h("label", { for: "secret-name" }, "Name"), nameInput),
  h("div", { class: "field" }, h("label", { for: "secret-value" }, "Value"), valueInput,
    h("span", { class: "muted small" }, "Stored encrypted. It is never shown again; setting an existing name adds a version.")),
  h("div", { class: "field inline" }, multi, h("label", { for: "secret-multiline" }, "Multi-line value")),
  h("button", { type: "submit", class: "primary", id: "secret-save" }, "Save secret"),
  formStatus);

  mount(main, h("div", { class: "page-head" }, h("h1", {}, "Secrets"), nsSelect), status,
    h("div", { class: "grid2" },
      h("section", { class: "card" },
        h("table", { class: "list", id: "secrets-table" },
          h("thead", {}, h("tr", {}, ["Name", "Version", "Versions", "Updated", "By", ""].map((t) => h("th", { scope: "col" }, t)))),
          body)),
      form));

  all("/namespaces").then((list) => {
    if (!alive) return;
    // Without a choice, a token that cannot see `default` starts at its first namespace.
    if (!chosen && list.length && !list.some((ns) => ns.name === "default")) {
      location.hash = hashLink("/secrets", { namespace: list[0].name });
      return;
    }
    for (const ns of list) if (ns.name !== namespace) nsSelect.appendChild(h("option", { value: ns.name }, ns.name));
  }).catch(() => {});

  function deleteCell(secret) {
    const cell = h("td", { class: "row-actions" });
    const ask = () => mount(cell,
      h("span", { class: "small" }, `Delete ${secret.name}? `),
      h("button", { type: "button", class: "danger", "data-confirm-delete": secret.name, onclick: async () => {
        try {
          await api("DELETE", `/namespaces/${enc(namespace)}/secrets/${enc(secret.name)}`);
          load();
        } catch (err) {
          mount(status, problemBox(err));
        }
      } }, "Delete"),
      " ",
      h("button", { type: "button", onclick: idle }, "Keep"));
    function idle() {
      mount(cell, h("button", { type: "button", class: "link", "data-delete": secret.name, onclick: ask }, "Delete…"));
    }
    idle();
    return cell;
  }

  async function load() {
    try {
      const secrets = await all(`/namespaces/${enc(namespace)}/secrets`);
      if (!alive) return;
      mount(status);
      mount(body, secrets.map((sec) => h("tr", { "data-secret": sec.name },
        h("td", { class: "mono" }, sec.name),
        h("td", { class: "num" }, String(sec.latest_version)),
        h("td", { class: "num" }, String(sec.versions)),
        h("td", {}, timeEl(sec.updated_at)),
        h("td", { class: "small" }, sec.updated_by || ""),
        deleteCell(sec))));
      if (!secrets.length) body.appendChild(h("tr", {}, h("td", { colspan: 6, class: "empty" }, `No secrets in ${namespace}.`)));
    } catch (err) {
      if (alive) mount(status, problemBox(err));
    }
  }
  load();
  return () => {
    alive = false;
  };
}
