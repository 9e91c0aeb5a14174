// One dataset: what it is, its first rows and the range of every feature; delete.

import { api } from "../api.js";
import { facts, h, labelFacts, num, section, when } from "../dom.js";
import { deleteButton } from "./datasets.js";

export async function render(view, [datasetId], context) {
  const { signal, navigate } = context;
  const path = `/v1/datasets/${encodeURIComponent(datasetId)}`;
  const [dataset, preview] = await Promise.all([api(path, { signal }), api(`${path}/preview?rows=20`, { signal })]);
  const table = h("table", { class: "list compact", id: "preview-table" },
    h("thead", {}, h("tr", {}, preview.columns.map((c, i) => h("th", { scope: "col", class: i === preview.columns.length - 1 ? "target" : "" }, c)))),
    h("tbody", {}, preview.rows.map((row) => h("tr", {}, row.map((v) => h("td", { class: typeof v === "number" ? "right" : "" }, typeof v === "number" ? num(v) : String(v)))))));
  const ranges = h("table", { class: "list compact", id: "ranges-table" },
    h("thead", {}, h("tr", {}, ["Feature", "Min", "Max"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, preview.feature_ranges.map((r, i) => h("tr", {}, h("th", { scope: "row" }, dataset.feature_names[i]), h("td", { class: "right" }, num(r.min)), h("td", { class: "right" }, num(r.max))))));
  view.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Dataset ", h("span", {}, dataset.name)),
      deleteButton(datasetId, { ...context, onDeleted: () => navigate("/ui/datasets") })),
    section("Summary", facts([
      ["Id", h("span", { class: "mono" }, dataset.id)],
      ...labelFacts(dataset).slice(1),
      ["Task", dataset.task],
      ["Rows", num(dataset.n_samples, { id: "dataset-rows" })],
      ["Features", num(dataset.n_features, { id: "dataset-features" })],
      ["Classes", dataset.classes ? dataset.classes.join(", ") : "—"],
      ["Target column", dataset.target_name || "—"],
      ["Format", dataset.source_format],
      // a dataset registered by URI (or a large upload kept in the artifact store) is read from there
      ...(dataset.uri ? [["Read from", h("span", { class: "mono small", id: "dataset-uri" }, dataset.uri)]] : []),
      ["Uploaded", when(dataset.created_at)],
      ["sha256", h("span", { class: "mono small" }, dataset.sha256)],
    ])),
    section(`First ${preview.rows.length} of ${preview.n_samples} rows`, h("div", { class: "table-wrap" }, table)),
    section("Feature ranges (all rows)", h("div", { class: "table-wrap" }, ranges)),
  );
}
