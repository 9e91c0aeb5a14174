// One job: status, progress, loss terms and metrics per epoch (live while it runs), cancel,
// the config as submitted, the error of a failed job, attempts and the worker host.

import { api, isTerminal, watchJob } from "../api.js";
import { lineChart } from "../charts.js";
import { facts, h, labelFacts, num, progressBar, section, statusBadge, when } from "../dom.js";

const LOSS_LABELS = {
  data: "data term", weight_decay: "weight decay", bv2: "BV² term", tv2: "TV² term",
  lipschitz_product: "Lipschitz term (product)", spectral_sum: "spectral term (sum)", total: "total",
};

/** The loss terms per epoch: one series per term the objective reported (log scale). */
function lossChart(history) {
  const names = [...new Set(history.flatMap((e) => Object.keys(e.losses || {})))];
  const series = names.map((name) => ({
    name: LOSS_LABELS[name] || `${name} term`,
    points: history.map((e) => [e.epoch, e.losses?.[name]]),
    dashed: name === "total",
  }));
  return lineChart({ id: "losses", title: "Loss terms per epoch (training batches, mean)", series, xLabel: "epoch", yLabel: "loss (log scale)", logY: true, empty: "waiting for the first epoch" });
}

/** One chart per metric (loss, accuracy or mse/mae): training and validation split. */
function metricCharts(history) {
  const names = [...new Set(history.flatMap((e) => [...Object.keys(e.train_metrics || {}), ...Object.keys(e.validation_metrics || {})]))];
  if (!names.length) names.push("loss");
  return names.map((name) =>
    lineChart({
      id: `metric-${name}`,
      title: `${name} per epoch`,
      series: [
        { name: "train", points: history.map((e) => [e.epoch, e.train_metrics?.[name]]) },
        { name: "validation", points: history.map((e) => [e.epoch, e.validation_metrics?.[name]]), dashed: true },
      ],
      xLabel: "epoch",
      yLabel: name === "accuracy" ? "accuracy (fraction)" : name,
      empty: "waiting for the first epoch",
    }),
  );
}

function jobFacts(job) {
  const registered = job.progress?.registered_as;
  return facts([
    ...labelFacts(job),
    ["Status", statusBadge(job.status)],
    ["Progress", h("span", {}, progressBar(job.progress), ` epoch ${job.progress?.epoch ?? 0} of ${job.progress?.epochs ?? "?"}`)],
    ["Dataset", job.dataset_id ? h("a", { href: `/ui/datasets/${job.dataset_id}`, "data-link": true, class: "mono" }, job.dataset_id) : "deleted"],
    ["Model", job.model_id ? h("a", { href: `/ui/models/${job.model_id}`, "data-link": true, class: "mono", id: "job-model-link" }, job.model_id) : "—"],
    ["Attempts", num(job.attempts, { id: "job-attempts" })],
    ["Worker host", h("span", { id: "job-worker", class: "mono" }, job.worker_host || "—")],
    ["Device · queue", `${job.device || "—"} · ${job.queue}`],
    ["Submitted", when(job.created_at)],
    ["Started", when(job.started_at)],
    ["Finished", when(job.finished_at)],
    ["Training time", job.train_seconds == null ? "—" : h("span", {}, num(job.train_seconds), " s")],
    ["Registered as", registered ? `${registered.name} v${registered.version ?? "?"}` : job.register_as || "—"],
  ]);
}

export async function render(view, [jobId], { signal, showProblem }) {
  let job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
  const cancel = h("button", { type: "button", id: "cancel-job", class: "danger" }, "Cancel job");
  const header = h("div", { class: "page-head" }, h("h1", {}, "Job ", h("span", { class: "mono" }, jobId)), cancel);
  const summary = h("div", { id: "job-facts" });
  const errorBox = h("div", { id: "job-error" });
  const charts = h("div", { class: "chart-grid chart-slot" });
  const config = h("pre", { class: "json", id: "job-config", tabindex: 0 }, JSON.stringify(job.config, null, 2));
  view.replaceChildren(
    header,
    section("Summary", summary, errorBox),
    section("Training", charts),
    section("Config as submitted", config),
  );

  const showJob = (next) => {
    job = next;
    summary.replaceChildren(jobFacts(job));
    cancel.hidden = isTerminal(job.status);
    cancel.disabled = job.cancel_requested;
    cancel.textContent = job.cancel_requested ? "Cancel requested…" : "Cancel job";
    errorBox.replaceChildren(...(job.error ? [h("h3", {}, "Error"), h("pre", { class: "error-text" }, job.error)] : []));
  };
  const showHistory = (history) => {
    charts.replaceChildren(lossChart(history), ...metricCharts(history));
    charts.dataset.epochs = history.length; // how many epochs are drawn (the browser tests read it)
  };
  showJob(job);
  showHistory([]);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      showJob(await api(`/v1/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST", signal }));
    } catch (error) {
      showProblem(error);
      cancel.disabled = false;
    }
  });
  const mode = await watchJob(jobId, { onJob: showJob, onHistory: showHistory, signal });
  header.dataset.followedBy = mode; // "stream", "poll" or "done": how the page kept up
}
