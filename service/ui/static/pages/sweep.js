// One sweep: the accuracy–robustness trade-off of its trials, to pick a model from.
// A scatter of every finished trial (validation score against the certified Lipschitz bound,
// log scale) with the Lipschitz front joined and the selected trial marked, and a table of all
// trials. While the sweep runs the page re-reads it every POLL_MS (a sweep has no event stream;
// its trials do, on their job pages) and stops once the sweep has ended.

import { api } from "../api.js";
import { PALETTE, scatterChart } from "../charts.js";
import { facts, fmt, h, labelFacts, num, section, statusBadge, when } from "../dom.js";

const POLL_MS = 1500;
const COLORS = { trial: "#9bb7d6", front: PALETTE[0], selected: "#e9a03b" };

function paramText(value) {
  if (Array.isArray(value)) return value.join(" × "); // architecture.hidden
  return typeof value === "number" ? fmt(value, 3) : String(value);
}

const paramsText = (params) => Object.entries(params).map(([path, v]) => `${path} = ${paramText(v)}`).join(", ") || "base config";

function ruleText(select) {
  if (select.rule === "max_accuracy") return select.max_lipschitz ? `max_accuracy with certified L ≤ ${fmt(select.max_lipschitz)}` : "max_accuracy";
  if (select.rule === "max_certified_accuracy") return `max_certified_accuracy at radius ${fmt(select.radius)}`;
  return select.rule === "knee" ? "knee of the Lipschitz front" : select.rule;
}

function spaceText(space) {
  return Object.entries(space).map(([path, values]) => (Array.isArray(values)
    ? `${path} ∈ {${values.map(paramText).join(", ")}}`
    : `${path} ∈ [${fmt(values.low)}, ${fmt(values.high)}] ${values.scale}${values.count ? ` (${values.count} points)` : ""}`)).join("; ");
}

/** Certified accuracy at `radius` read as the service reads it for the fronts (lipspline/sweeps/selection.py):
 *  the value at the smallest listed radius >= it (the curve only decreases), none when all are smaller. */
function certifiedAt(curve, radius) {
  if (!curve || radius == null) return null;
  const at = curve.radii.findIndex((r) => r >= radius);
  return at >= 0 ? curve.global[at] : null;
}

function chart(sweep, classifier) {
  const onFront = new Set((sweep.front?.lipschitz || []).map((p) => p.trial));
  const chosen = sweep.selected?.trial;
  const finished = sweep.trials.filter((t) => t.score != null);
  // drawn in order: other trials, front trials, the selected one last so its mark is on top
  finished.sort((a, b) => (a.trial === chosen) - (b.trial === chosen) || onFront.has(a.trial) - onFront.has(b.trial));
  const points = finished.map((t) => {
    const kind = t.trial === chosen ? "selected" : onFront.has(t.trial) ? "front" : "trial";
    const notes = [onFront.has(t.trial) && "on the Lipschitz front", t.trial === chosen && "selected"].filter(Boolean);
    return {
      x: t.certified_lipschitz, y: t.score, color: COLORS[kind], r: kind === "selected" ? 8 : 5,
      className: kind, data: { trial: t.trial }, label: kind === "selected" ? `trial ${t.trial} (selected)` : null,
      title: `trial ${t.trial}: ${paramsText(t.params)}\nscore ${fmt(t.score)}, certified L ${fmt(t.certified_lipschitz)}${notes.length ? `\n${notes.join(", ")}` : ""}`,
    };
  });
  // the front joined from the most robust point to the most accurate one
  const front = [...(sweep.front?.lipschitz || [])].sort((a, b) => a.certified_lipschitz - b.certified_lipschitz);
  return scatterChart({
    id: "sweep-trials", title: "Validation score against the certified Lipschitz bound, one point per finished trial",
    points, logX: true, xLabel: "certified Lipschitz bound (l2, log scale)",
    yLabel: classifier ? "validation accuracy" : "validation score (−RMSE)",
    line: { name: "Lipschitz front (no other trial is both more accurate and more robust)", color: COLORS.front,
      points: front.map((p) => [p.certified_lipschitz, p.score]), data: { trials: front.map((p) => p.trial).join(" ") } },
    legend: [{ name: "trial", color: COLORS.trial }, { name: "selected", color: COLORS.selected }],
    empty: sweep.status === "running" ? "waiting for the first trial to finish" : "no trial finished",
  });
}

function trialTable(sweep) {
  const radius = sweep.front?.radius;
  const fronts = { lipschitz: "L", certified_accuracy: "cert. acc." };
  const marks = (trial) => Object.entries(fronts).filter(([name]) => (sweep.front?.[name] || []).some((p) => p.trial === trial))
    .map(([name, label]) => h("span", { class: "badge front-mark", "data-front": name, title: `on the ${name.replace("_", " ")} front` }, label));
  const head = ["Trial", "Params", "Status", "Epochs", "Score", "Certified L", radius == null ? "Cert. acc." : `Cert. acc. at r = ${fmt(radius)}`, "Fronts", "Model"];
  const waiting = sweep.progress.planned - sweep.trials.length; // trials appear as they are launched
  return h("table", { class: "list compact", id: "trials-table" },
    waiting > 0 && sweep.status === "running" ? h("caption", {}, `${waiting} more planned trial${waiting === 1 ? "" : "s"} not launched yet`) : null,
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, sweep.trials.map((t) => h("tr", { "data-trial": t.trial, class: t.trial === sweep.selected?.trial ? "selected" : null },
      h("td", {}, h("a", { href: `/ui/jobs/${t.job_id}`, "data-link": true, title: `job ${t.job_id}` }, `trial ${t.trial}`)),
      h("td", { class: "params" }, paramsText(t.params)),
      h("td", {}, statusBadge(t.status)),
      h("td", { class: "right" }, num(t.epochs), t.stopped_at_epoch != null ? ` (stopped at ${t.stopped_at_epoch})` : ""),
      h("td", { class: "right" }, num(t.score, { "data-field": "score" })),
      h("td", { class: "right" }, num(t.certified_lipschitz, { "data-field": "certified_lipschitz" })),
      h("td", { class: "right" }, num(certifiedAt(t.certified_accuracy, radius), { "data-field": "certified_accuracy" })),
      h("td", {}, marks(t.trial)),
      h("td", {}, t.model_id ? h("a", { href: `/ui/models/${t.model_id}`, "data-link": true, class: "mono" }, t.model_id.slice(0, 12)) : "—")))));
}

function sweepFacts(sweep) {
  const { selected } = sweep;
  const registered = selected?.registered_as;
  return facts([
    ...labelFacts(sweep),
    ["Status", statusBadge(sweep.status)],
    ["Strategy", `${sweep.strategy} · budget ${sweep.budget.max_trials} trials, ${sweep.budget.max_concurrent} at once`],
    ["Select rule", ruleText(sweep.select)],
    ["Selected", selected
      ? h("span", {}, `trial ${selected.trial} · `, selected.model_id ? h("a", { href: `/ui/models/${selected.model_id}`, "data-link": true, class: "mono", id: "selected-model" }, selected.model_id) : "model deleted",
        registered ? ` · registered as ${registered.name} v${registered.version ?? "?"}` : "")
      : sweep.status === "running" ? "when the sweep ends" : "none"],
    ["Space", spaceText(sweep.space)],
    ["Dataset", sweep.dataset_id ? h("a", { href: `/ui/datasets/${sweep.dataset_id}`, "data-link": true, class: "mono" }, sweep.dataset_id) : "deleted"],
    ["Created", when(sweep.created_at)],
    ["Finished", when(sweep.finished_at)],
    ["Note", h("span", { id: "sweep-note" }, sweep.note || "—")],
    ...(sweep.front && sweep.front.note
      ? [["Certified accuracy", h("span", { id: "sweep-front-note", class: "warning" }, sweep.front.note)]] : []),
  ]);
}

function progressLine({ progress: p }) {
  const ended = p.succeeded + p.stopped + p.failed + p.cancelled;
  return h("p", { class: "sweep-progress", "data-succeeded": p.succeeded, "data-planned": p.planned },
    h("progress", { max: p.planned || 1, value: ended, "aria-label": `${ended} of ${p.planned} trials ended` }),
    ` ${p.succeeded} of ${p.planned} trials succeeded · ${p.active} active · ${p.stopped} stopped early · ${p.failed} failed · ${p.cancelled} cancelled · ${p.epochs} epochs in all`);
}

export async function render(view, [sweepId], { signal, showProblem }) {
  const path = `/v1/sweeps/${encodeURIComponent(sweepId)}`;
  let sweep = await api(path, { signal });
  const cancel = h("button", { type: "button", id: "cancel-sweep", class: "danger" }, "Cancel sweep");
  const summary = h("div", { id: "sweep-facts" });
  const progress = h("div", { id: "sweep-progress" });
  const plot = h("div", { class: "chart-slot" });
  const trials = h("div", { class: "table-wrap" });
  view.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Sweep ", h("span", { class: "mono" }, sweepId)), cancel),
    section("Summary", summary, progress),
    section("Accuracy against robustness", h("p", { class: "muted" },
      "Left is more robust (a smaller certified bound), up is more accurate. Hover a point for its trial and params."), plot),
    section("Trials", trials),
  );

  const show = (next) => {
    // a sweep never reopens: a poll answered after the cancel's answer is stale, not news
    if (sweep.status !== "running" && next.status === "running") return;
    sweep = next;
    const classifier = sweep.trials.some((t) => t.certified_accuracy);
    summary.replaceChildren(sweepFacts(sweep));
    progress.replaceChildren(progressLine(sweep));
    plot.replaceChildren(chart(sweep, classifier));
    trials.replaceChildren(trialTable(sweep));
    cancel.hidden = sweep.status !== "running";
  };
  show(sweep);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      show(await api(`${path}/cancel`, { method: "POST", signal }));
    } catch (error) {
      showProblem(error);
    } finally {
      cancel.disabled = false;
    }
  });
  while (sweep.status === "running" && !signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (signal.aborted) return;
    show(await api(path, { signal }));
  }
}
