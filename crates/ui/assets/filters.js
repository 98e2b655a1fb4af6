// The namespace filter the list pages share, and what they do for a token whose roles
// cover only some namespaces.

import { all } from "./api.js";
import { h, hashLink } from "./dom.js";

/**
 * A namespace `<select>` for a list page's filter form: "All namespaces", the current
 * choice, and (once loaded) every namespace the token can see. `isAlive()` tells whether
 * the page is still shown when the list arrives.
 */
export function namespaceSelect(current, isAlive) {
  const select = h("select", { id: "f-namespace", name: "namespace", "aria-label": "Namespace" },
    h("option", { value: "" }, "All namespaces"),
    current ? h("option", { value: current, selected: true }, current) : null);
  all("/namespaces").then((namespaces) => {
    if (!isAlive()) return;
    for (const ns of namespaces) {
      if (ns.name !== current) select.appendChild(h("option", { value: ns.name }, ns.name));
    }
  }).catch(() => {});
  return select;
}

/**
 * A token with roles in some namespaces only may not list across all of them (403): the
 * page at `path` opens on its first namespace instead. True when it did so.
 */
export async function openFirstNamespace(path, filters, isAlive) {
  const first = await all("/namespaces").then((l) => l[0], () => null);
  if (!isAlive() || !first) return false;
  history.replaceState(null, "", hashLink(path, { ...filters, namespace: first.name }));
  dispatchEvent(new HashChangeEvent("hashchange"));
  return true;
}
