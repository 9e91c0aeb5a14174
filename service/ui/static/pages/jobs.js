// Jobs: every job of the tenant, newest first, with live status and progress.
// Active jobs are followed one by one (event stream or polling, see api.js watchJob);
// the list itself is re-read every few seconds to pick up jobs submitted elsewhere.

import { api, apiList, isTerminal, watchJob } from "../api.js";
import { h, nameCell, progressBar, statusBadge, when } from "../dom.js";

const RELIST_MS = 4000;

function progressCell(job) {
  const { epoch = 0, epochs = 0 } = job.progress || {};
  return h("td", { class: "progress-cell" }, progressBar(job.progress), h("span", { class: "epochs" }, `${epoch} / ${epochs}`));
}

function jobRow(job) {
  return h(
    "tr",
    { "data-job": job.id },
    h("td", {}, h("a", { href: `/ui/jobs/${job.id}`, "data-link": true, class: "mono" }, job.id.slice(0, 12))),
    h("td", { class: "name-cell" }, nameCell(job)),
    h("td", { class: "status-cell" }, statusBadge(job.status)),
    progressCell(job),
    h("td", {}, job.dataset_id ? h("a", { href: `/ui/datasets/${job.dataset_id}`, "data-link": true, class: "mono" }, job.dataset_id.slice(0, 12)) : "deleted"),
    h("td", {}, job.model_id ? h("a", { href: `/ui/models/${job.model_id}`, "data-link": true, class: "mono" }, job.model_id.slice(0, 12)) : "—"),
    h("td", {}, when(job.created_at)),
  );
}

export async function render(view, _params, { signal, showProblem }) {
  const body = h("tbody");
  const table = h(
    "table",
    { class: "list", id: "jobs-table" },
    h("caption", { class: "visually-hidden" }, "Training jobs"),
    h("thead", {}, h("tr", {}, ["Job", "Name · tags", "Status", "Progress (epochs)", "Dataset", "Model", "Submitted"].map((t) => h("th", { scope: "col" }, t)))),
    body,
  );
  const empty = h("p", { class: "muted", hidden: true }, "No jobs yet: submit one with POST /v1/jobs or `lipspline jobs submit`.");
  view.replaceChildren(h("section", { class: "card" }, h("h1", {}, "Jobs"), h("div", { class: "table-wrap" }, table), empty));

  const followed = new Set();
  const replaceRow = (job) => {
    const old = body.querySelector(`tr[data-job="${job.id}"]`);
    if (old) old.replaceWith(jobRow(job));
  };
  const follow = (job) => {
    if (isTerminal(job.status) || followed.has(job.id)) return;
    followed.add(job.id);
    watchJob(job.id, { onJob: replaceRow, history: false, signal })
      .catch((error) => signal.aborted || showProblem(error))
      .finally(() => followed.delete(job.id));
  };
  while (!signal.aborted) {
    const jobs = await apiList("/v1/jobs", { signal });
    body.replaceChildren(...jobs.map(jobRow));
    empty.hidden = jobs.length > 0;
    jobs.forEach(follow);
    await new Promise((resolve) => setTimeout(resolve, RELIST_MS));
  }
}
