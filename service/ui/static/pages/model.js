// One model: the learned activations, the certificate against its lower bounds, metrics,
// config, lineage, registry names and aliases, and downloads.

import { api, saveBlob } from "../api.js";
import { lineChart, logBars, splineChart } from "../charts.js";
import { facts, fmt, h, labelFacts, num, section, when } from "../dom.js";

/** One line per bound: what it is, shown on hover. */
export const BOUND_EXPLANATIONS = {
  bv2_mixed: "Theorem 1: product of the layers' mixed (2,∞) weight norms and the splines' BV² norms.",
  frobenius: "Proposition 3: product of Frobenius weight norms and the splines' summed BV² norms.",
  spectral_product: "Product of every layer's spectral norm and every activation's largest slope.",
  per_neuron_scaled: "Spectral norms with each neuron's slope folded into its weights (the smaller of two groupings).",
  liplt: "Loop transformation: each spline split into its mean slope plus a 1-Lipschitz remainder, unrolled.",
  liplt_scaled: "LipLT with a searched per-neuron diagonal scaling of every cross term.",
  lipsdp_neuron: "LipSDP-Neuron: a semidefinite program, solved and then verified in floating point.",
  empirical_lower: "Largest difference quotient |f(x)-f(y)|/|x-y| seen over pairs of training rows (a lower bound).",
  jacobian_lower: "Largest Jacobian norm found by gradient ascent from training rows (a lower bound).",
};
const BOUND_ORDER = ["bv2_mixed", "frobenius", "spectral_product", "per_neuron_scaled", "liplt", "liplt_scaled", "lipsdp_neuron"];
const PAGE_SIZE = 16; // neurons drawn at once; wider layers get a selector

function certificateItems(lipschitz) {
  const names = [...BOUND_ORDER.filter((n) => n in lipschitz.bounds || n in lipschitz.skipped),
    ...Object.keys(lipschitz.bounds).filter((n) => !BOUND_ORDER.includes(n))];
  const uppers = names.map((name) => ({
    name,
    value: lipschitz.bounds[name] ?? null,
    role: name === lipschitz.certified_by ? "certified" : "upper",
    explain: BOUND_EXPLANATIONS[name] || "an upper bound of the l2 Lipschitz constant",
    note: lipschitz.skipped[name] ? "skipped" : undefined,
  }));
  const lowers = ["empirical_lower", "jacobian_lower"].map((name) => ({ name, value: lipschitz[name], role: "lower", explain: BOUND_EXPLANATIONS[name] }));
  return [...uppers, ...lowers];
}

function certificateSection(lipschitz) {
  const items = certificateItems(lipschitz);
  const chart = logBars({ id: "certificate", title: "Lipschitz bounds (l2, raw inputs → outputs)", items, xLabel: "Lipschitz constant (log scale; output units per input unit)", marker: lipschitz.certified });
  const table = h("table", { class: "list compact", id: "bounds-table" },
    h("thead", {}, h("tr", {}, ["Bound", "Value", "× best lower", "Kind"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, items.map((item) => h("tr", { "data-bound": item.name, title: item.explain },
      h("th", { scope: "row" }, item.name),
      h("td", { class: "right" }, num(item.value, { "data-bound-value": item.name })),
      h("td", { class: "right" }, item.value && lipschitz.best_lower ? fmt(item.value / lipschitz.best_lower) : "—"),
      h("td", {}, item.role === "certified" ? "certified (smallest upper)" : item.role === "lower" ? "lower bound" : lipschitz.skipped[item.name] ? `skipped: ${lipschitz.skipped[item.name]}` : "upper bound")))));
  return section(
    "Certificate",
    facts([
      ["Certified bound", h("span", {}, num(lipschitz.certified, { id: "certified-value" }), ` by ${lipschitz.certified_by || "—"}`)],
      ["Best lower bound", num(lipschitz.best_lower, { id: "best-lower-value" })],
      ["Tightness (certified / lower)", num(lipschitz.tightness, { id: "tightness-value" })],
    ]),
    h("p", { class: "muted" }, "The true constant lies between the best lower bound and the certified bound. Hover a bar for what it is."),
    chart,
    h("div", { class: "table-wrap" }, table),
  );
}

/** Classifiers: the share of held-out points classified correctly *and* certified at each l2 radius. */
function robustnessSection(model) {
  const curve = model.certified_accuracy;
  if (curve) {
    const series = [{ name: "certified by the global bound", points: curve.radii.map((r, i) => [r, curve.global[i]]) }];
    if (curve.local) series.push({ name: "global or local bound", dashed: true, points: curve.radii.map((r, i) => [r, curve.local[i]]) });
    const target = curve.target_radius == null ? [] : [["Target radius", h("span", {}, num(curve.target_radius),
      " · certified there: ", num(curve.certified_at_target, { id: "certified-at-target" }))]];
    return section(
      "Certified robust accuracy",
      curve.warning ? h("p", { class: "warning", id: "certified-warning", role: "note" }, curve.warning) : null,
      facts([["Points", `${curve.points} (${curve.split} split)`], ["Clean accuracy", num(curve.accuracy, { id: "clean-accuracy" })],
        ["Radii", curve.radius_rule], ...target]),
      lineChart({ id: "certified-accuracy", title: "Certified accuracy against the l2 radius", series,
        xLabel: "radius (l2, raw input units)", yLabel: "certified accuracy (share of points)" }),
    );
  }
  const tolerance = model.certified_tolerance;
  if (!tolerance) return null;
  return section(
    "Certified output tolerance",
    facts([["Points", `${tolerance.points} (${tolerance.split} split)`], ["MAE", num(tolerance.mae)], ["RMSE", num(tolerance.rmse)]]),
    lineChart({ id: "certified-tolerance", title: "Largest certified output change against the input change",
      series: [{ name: "largest over the points", points: tolerance.epsilons.map((e, i) => [e, tolerance.output_tolerance[i]]) },
        { name: "median", dashed: true, points: tolerance.epsilons.map((e, i) => [e, tolerance.median_output_tolerance[i]]) }],
      xLabel: "input change ε (l2, raw units)", yLabel: "output change (target units)" }),
  );
}

function layerPanel(layer, sparsity) {
  const knotsOf = (unit) => (layer.knots ? { x: layer.knots.x, y: layer.knots.y[unit], active: layer.knots.active[unit] } : null);
  const rangeOf = (unit) => (layer.preactivation_range ? { min: layer.preactivation_range.min[unit], max: layer.preactivation_range.max[unit] } : null);
  const grid = h("div", { class: "small-multiples", "data-layer": layer.layer });
  const draw = (start) => {
    const units = [];
    for (let unit = start; unit < Math.min(layer.units, start + PAGE_SIZE); unit++) {
      units.push(splineChart({ layer: layer.layer, unit, x: layer.x, y: layer.y[unit], range: rangeOf(unit), knots: knotsOf(unit) }));
    }
    grid.replaceChildren(...units);
  };
  const controls = [];
  if (layer.units > PAGE_SIZE) {
    const select = h("select", { id: `layer-${layer.layer}-page`, "aria-label": `neurons of layer ${layer.layer} to show` });
    for (let start = 0; start < layer.units; start += PAGE_SIZE) {
      select.append(h("option", { value: start }, `neurons ${start}–${Math.min(layer.units, start + PAGE_SIZE) - 1}`));
    }
    select.addEventListener("change", () => draw(Number(select.value)));
    controls.push(h("label", {}, "Show ", select));
  }
  const summary = sparsity
    ? h("p", { class: "sparsity", "data-layer": layer.layer },
        h("strong", {}, `${sparsity.active_knots} of ${sparsity.neurons * sparsity.interior_knots_per_neuron}`),
        ` interior knots active (ReLU form; ${sparsity.interior_knots_per_neuron} per neuron)`)
    : null;
  if (layer.x) draw(0);
  const title = `Layer ${layer.layer} · ${layer.kind} · ${layer.units} ${layer.learnable ? "neurons" : "(same for every neuron)"}`;
  return h("div", { class: "layer" }, h("h3", {}, title), summary, layer.note ? h("p", { class: "muted" }, layer.note) : null, ...controls, grid);
}

async function activationsSection(modelId, model, signal) {
  const body = await api(`/v1/models/${encodeURIComponent(modelId)}/activations`, { signal });
  const sparsityByIndex = model.sparsity?.layers || [];
  let splineIndex = 0;
  const panels = body.layers.map((layer) => layerPanel(layer, layer.knots ? sparsityByIndex[splineIndex++] : null));
  const anyRange = body.layers.some((l) => l.preactivation_range);
  return section(
    "Learned activations",
    h("p", { class: "muted" }, anyRange
      ? "Shaded: the range of the training pre-activations. Dots: active knots (a kink the spline kept)."
      : "Dots: active knots. The training pre-activation range is not shown: the model's dataset was deleted."),
    h("p", {}, h("strong", {}, `${model.sparsity?.total_active_knots ?? "—"}`), " active knots in all."),
    ...panels,
  );
}

async function registrySection(model) {
  // the model's registry entries come with it (GET /v1/models/{id} `registrations`): no call per name
  const entries = model.registrations || [];
  return section(
    "Registry",
    entries.length
      ? h("ul", { id: "registry-entries" }, entries.map((v) => h("li", {},
          h("a", { href: `/ui/registry/${encodeURIComponent(v.name)}`, "data-link": true }, h("code", {}, v.reference)),
          v.aliases.length ? [" · aliases: ", v.aliases.map((a) => h("code", { class: "alias" }, `${v.name}@${a}`))] : " · no alias")))
      : h("p", { class: "muted" }, "Not registered under any name."),
  );
}

function metricsTable(metrics) {
  const splits = Object.entries(metrics).filter(([, v]) => v && typeof v === "object");
  const names = [...new Set(splits.flatMap(([, v]) => Object.keys(v)))];
  const scalars = Object.entries(metrics).filter(([, v]) => typeof v !== "object");
  return [
    h("div", { class: "table-wrap" }, h("table", { class: "list compact", id: "metrics-table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"), splits.map(([split]) => h("th", { scope: "col" }, split)))),
      h("tbody", {}, names.map((name) => h("tr", {}, h("th", { scope: "row" }, name),
        splits.map(([split, values]) => h("td", { class: "right" }, num(values[name], { "data-metric": `${split}.${name}` })))))))),
    scalars.length ? facts(scalars.map(([k, v]) => [k, num(v)])) : null,
  ];
}

function downloadButton(modelId, format, label, showProblem) {
  const button = h("button", { type: "button", id: `download-${format}` }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const blob = await api(`/v1/models/${encodeURIComponent(modelId)}/download?format=${format}`, { as: "blob" });
      saveBlob(blob, `lipspline-model-${modelId}.${format}`);
    } catch (error) {
      showProblem(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export async function render(view, [modelRef], { signal, showProblem }) {
  const model = await api(`/v1/models/${encodeURIComponent(modelRef)}`, { signal });
  const id = model.id;
  const activationSlot = h("div", { class: "slot-tall" }, h("p", { class: "muted" }, "Loading activations…"));
  const registrySlot = h("div", {}, h("p", { class: "muted" }, "Loading registry…"));
  view.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Model ", h("span", { class: "mono" }, id)),
      h("div", { class: "actions" }, downloadButton(id, "zip", "Download zip", showProblem),
        downloadButton(id, "onnx", "Download ONNX", showProblem),
        h("a", { href: `/ui/predict?model=${id}`, "data-link": true, class: "button" }, "Open in playground"))),
    section("Summary", facts([
      ...labelFacts(model),
      ["Task", model.task],
      ["Classes", model.classes ? model.classes.join(", ") : "—"],
      ["Features", model.feature_names.join(", ")],
      ["Parameters", num(model.parameter_count)],
      ["Created", when(model.created_at)],
      ["Dataset", model.dataset_id ? h("a", { href: `/ui/datasets/${model.dataset_id}`, "data-link": true, class: "mono", id: "lineage-dataset" }, model.dataset_id) : "deleted"],
      ["Job", h("a", { href: `/ui/jobs/${model.job_id}`, "data-link": true, class: "mono", id: "lineage-job" }, model.job_id)],
      ["Weights sha256", h("span", { class: "mono small" }, model.weights_sha256)],
    ])),
    certificateSection(model.lipschitz),
    ...[robustnessSection(model)].filter(Boolean),
    activationSlot,
    section("Metrics", ...metricsTable(model.metrics)),
    registrySlot,
    section("Config", h("pre", { class: "json", tabindex: 0 }, JSON.stringify(model.config, null, 2))),
  );
  const [activations, registry] = await Promise.all([activationsSection(id, model, signal), registrySection(model)]);
  activationSlot.replaceChildren(activations);
  registrySlot.replaceChildren(registry);
}
