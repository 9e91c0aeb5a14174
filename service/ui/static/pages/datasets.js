// Datasets: list with sizes, task and classes; each links to its preview; delete from here or there.

import { api, apiList } from "../api.js";
import { h, num, tagChips, when } from "../dom.js";

/** A delete button that asks once more (no modal dialog: the second press is the confirmation). */
export function deleteButton(datasetId, { signal, showProblem, onDeleted }) {
  const button = h("button", { type: "button", class: "danger", "data-delete": datasetId }, "Delete");
  let armed = false;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = "Confirm delete";
      button.setAttribute("aria-label", `confirm deleting dataset ${datasetId}`);
      return;
    }
    button.disabled = true;
    try {
      await api(`/v1/datasets/${encodeURIComponent(datasetId)}`, { method: "DELETE", signal });
      onDeleted();
    } catch (error) {
      showProblem(error);
      button.disabled = false;
    }
  });
  button.addEventListener("blur", () => {
    if (armed && !button.disabled) {
      armed = false;
      button.textContent = "Delete";
      button.removeAttribute("aria-label");
    }
  });
  return button;
}

export async function render(view, _params, context) {
  const datasets = await apiList("/v1/datasets", { signal: context.signal });
  const rows = datasets.map((d) => {
    const row = h(
      "tr",
      { "data-dataset": d.id },
      h("td", {}, h("a", { href: `/ui/datasets/${d.id}`, "data-link": true }, d.name)),
      h("td", {}, tagChips(d.tags) || "—"),
      h("td", { class: "mono" }, d.id.slice(0, 12)),
      h("td", {}, d.task),
      h("td", { class: "right" }, num(d.n_samples, { "data-field": "n_samples" })),
      h("td", { class: "right" }, num(d.n_features, { "data-field": "n_features" })),
      h("td", {}, d.classes ? d.classes.join(", ") : "—"),
      h("td", {}, d.source_format),
      h("td", {}, when(d.created_at)),
    );
    row.append(h("td", {}, deleteButton(d.id, { ...context, onDeleted: () => row.remove() })));
    return row;
  });
  const head = ["Name", "Tags", "Id", "Task", "Rows", "Features", "Classes", "Format", "Uploaded", ""];
  view.replaceChildren(
    h("section", { class: "card" }, h("h1", {}, "Datasets"),
      datasets.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "list", id: "datasets-table" },
            h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)))
        : h("p", { class: "muted" }, "No datasets yet: upload one with POST /v1/datasets.")),
  );
}
