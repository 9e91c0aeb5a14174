// Sweeps: every sweep of the tenant, newest first, with its progress and the model it selected.
// While any sweep runs the list is re-read every few seconds, so progress moves without a reload.

import { apiList } from "../api.js";
import { h, nameCell, statusBadge, when } from "../dom.js";

const RELIST_MS = 4000;

const link = (href, id) => h("a", { href, "data-link": true, class: "mono" }, id.slice(0, 12));

function sweepRow(sweep) {
  const { succeeded, planned } = sweep.progress;
  const model = sweep.selected?.model_id;
  return h(
    "tr",
    { "data-sweep": sweep.id },
    h("td", {}, link(`/ui/sweeps/${sweep.id}`, sweep.id)),
    h("td", { class: "name-cell" }, nameCell(sweep)),
    h("td", {}, statusBadge(sweep.status)),
    h("td", {}, sweep.strategy),
    h("td", { class: "progress-cell" }, h("progress", { max: planned || 1, value: succeeded, "aria-label": `${succeeded} of ${planned} trials succeeded` }),
      h("span", { class: "epochs", "data-field": "progress" }, `${succeeded} / ${planned}`)),
    h("td", { "data-field": "selected" }, model ? link(`/ui/models/${model}`, model) : "—"),
    h("td", {}, sweep.dataset_id ? link(`/ui/datasets/${sweep.dataset_id}`, sweep.dataset_id) : "deleted"),
    h("td", {}, when(sweep.created_at)),
  );
}

export async function render(view, _params, { signal }) {
  const body = h("tbody");
  const table = h("table", { class: "list", id: "sweeps-table" },
    h("caption", { class: "visually-hidden" }, "Sweeps"),
    h("thead", {}, h("tr", {}, ["Sweep", "Name · tags", "Status", "Strategy", "Progress (succeeded / planned)", "Selected model", "Dataset", "Created"].map((t) => h("th", { scope: "col" }, t)))),
    body);
  const empty = h("p", { class: "muted", hidden: true }, "No sweeps yet: start one with POST /v1/sweeps or `lipspline sweeps submit`.");
  view.replaceChildren(h("section", { class: "card" }, h("h1", {}, "Sweeps"), h("div", { class: "table-wrap" }, table), empty));
  for (;;) {
    const sweeps = await apiList("/v1/sweeps", { signal });
    body.replaceChildren(...sweeps.map(sweepRow));
    empty.hidden = sweeps.length > 0;
    if (!sweeps.some((sweep) => sweep.status === "running")) return;
    await new Promise((resolve) => setTimeout(resolve, RELIST_MS));
    if (signal.aborted) return;
  }
}
