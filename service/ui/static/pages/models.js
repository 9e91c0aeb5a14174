// Models: every trained model with its task, certificate and size, and the registry names it is a version of.

import { api, apiList } from "../api.js";
import { h, nameCell, num, when } from "../dom.js";

/** `name@alias` for each alias pointing at the model, `name/versions/N` where none does; each links to its name. */
function registryCell(registrations) {
  if (!registrations.length) return "—";
  const references = registrations.flatMap((r) =>
    (r.aliases.length ? r.aliases.map((a) => `${r.name}@${a}`) : [r.reference]).map((text) => [r.name, text]));
  return references.map(([name, text], i) => [i ? " " : null,
    h("a", { href: `/ui/registry/${encodeURIComponent(name)}`, "data-link": true, "data-reference": text }, h("code", { class: "alias" }, text))]);
}

export async function render(view, _params, { signal }) {
  const models = await apiList("/v1/models", { signal });
  const rows = models.map((m) =>
    h(
      "tr",
      { "data-model": m.id },
      h("td", {}, h("a", { href: `/ui/models/${m.id}`, "data-link": true, class: "mono" }, m.id.slice(0, 12))),
      h("td", { class: "name-cell" }, nameCell(m)),
      h("td", { "data-field": "registry" }, registryCell(m.registrations || [])),
      h("td", {}, m.task),
      h("td", {}, m.config.architecture?.hidden?.join(" × ") || "—", " · ", m.config.architecture?.activation || ""),
      h("td", { class: "right" }, num(m.lipschitz.certified)),
      h("td", {}, m.lipschitz.certified_by || "—"),
      h("td", { class: "right" }, num(m.lipschitz.tightness)),
      h("td", { class: "right" }, num(m.parameter_count)),
      h("td", {}, when(m.created_at)),
      h("td", {}, h("a", { href: `/ui/predict?model=${m.id}`, "data-link": true }, "Predict")),
    ),
  );
  const head = ["Model", "Name · tags", "Name / alias", "Task", "Hidden · activation", "Certified L (l2)", "by", "Tightness", "Parameters", "Created", ""];
  view.replaceChildren(
    h(
      "section",
      { class: "card" },
      h("h1", {}, "Models"),
      models.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "list", id: "models-table" },
            h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No models yet: a job that succeeds stores one."),
    ),
  );
}
