// Models: every trained model with its task, certificate and size.

import { api, apiList } from "../api.js";
import { h, num, when } from "../dom.js";

export async function render(view, _params, { signal }) {
  const models = await apiList("/v1/models", { signal });
  const rows = models.map((m) =>
    h(
      "tr",
      { "data-model": m.id },
      h("td", {}, h("a", { href: `/ui/models/${m.id}`, "data-link": true, class: "mono" }, m.id.slice(0, 12))),
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
  const head = ["Model", "Task", "Hidden · activation", "Certified L (l2)", "by", "Tightness", "Parameters", "Created", ""];
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
