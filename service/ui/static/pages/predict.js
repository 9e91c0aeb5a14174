// Predict playground: paste rows or upload a CSV, get predictions with their certified radius and
// output bound. For a model with two input features, the decision regions over the data range,
// with the certified-radius disc around every predicted point: moved anywhere inside its disc,
// the point keeps its class. That is the product's promise, drawn.

import { api, apiList } from "../api.js";
import { axes, PALETTE, scale } from "../charts.js";
import { fmt, h, num, s } from "../dom.js";

const GRID = 60; // cells per axis of the region map
const BATCH = 1200; // rows per predict call while drawing the map
const MAP = { width: 560, height: 460, left: 64, right: 548, top: 12, bottom: 412 };

/** Rows of numbers from pasted text or a CSV file; a header naming the features selects their columns. */
export function parseRows(text, featureNames) {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const cells = lines.map((l) => l.split(/[,;\t ]+/).filter(Boolean));
  let columns = null;
  if (cells.length && cells[0].some((c) => Number.isNaN(Number(c)))) {
    const header = cells.shift();
    if (featureNames.every((name) => header.includes(name))) columns = featureNames.map((name) => header.indexOf(name));
  }
  return cells.map((row) => (columns ? columns.map((i) => row[i]) : row).map(Number));
}

function regionColor(model, output) {
  if (model.task === "classification") return PALETTE[output.index % PALETTE.length];
  return output.color;
}

/** The class index (or, for regression, a colour on a blue–red ramp) of each predict answer. */
function classify(model, answer, valueRange) {
  return answer.predictions.map((prediction) => {
    if (model.task === "classification") return { index: model.classes.findIndex((c) => c === prediction), prediction };
    const t = valueRange ? Math.min(1, Math.max(0, (prediction - valueRange[0]) / (valueRange[1] - valueRange[0] || 1))) : 0.5;
    return { color: `rgb(${Math.round(40 + 200 * t)}, ${Math.round(90 + 40 * (1 - Math.abs(2 * t - 1)))}, ${Math.round(240 - 200 * t)})`, prediction };
  });
}

async function predictRows(modelId, rows, epsilon, signal) {
  return api(`/v1/models/${encodeURIComponent(modelId)}/predict`, { method: "POST", json: { inputs: rows, epsilon }, signal });
}

function resultsTable(model, rows, answer) {
  const classifier = model.task === "classification";
  const head = ["#", ...model.feature_names, "Prediction", classifier ? "Certified radius (l2)" : null, "Output bound", "Rounding bound"].filter(Boolean);
  return h("table", { class: "list compact", id: "predict-results" },
    h("caption", {}, `Lipschitz bound ${fmt(answer.lipschitz_bound)} (l2) · ε = ${fmt(answer.epsilon)} · ${answer.arithmetic}`),
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((row, i) => h("tr", { "data-row": i },
      h("td", {}, i),
      row.map((v) => h("td", { class: "right" }, num(v))),
      h("td", { class: "right", "data-field": "prediction" }, typeof answer.predictions[i] === "number" && !classifier ? num(answer.predictions[i]) : String(answer.predictions[i])),
      classifier ? h("td", { class: "right" }, num(answer.certified_radius[i], { "data-field": "certified_radius" })) : null,
      h("td", { class: "right" }, num(answer.output_bounds?.[i] ?? null, { "data-field": "output_bound" })),
      h("td", { class: "right" }, num(answer.rounding_bound[i], { "data-field": "rounding_bound" }))))));
}

/** The decision-region map of a 2-feature model; `addPoints` draws predicted points with their discs. */
async function regionMap(model, ranges, epsilonOf, onPoints, signal) {
  const pad = (lo, hi) => [lo - 0.05 * (hi - lo || 1), hi + 0.05 * (hi - lo || 1)];
  const x = scale(pad(ranges[0].min, ranges[0].max), [MAP.left, MAP.right]);
  const y = scale(pad(ranges[1].min, ranges[1].max), [MAP.bottom, MAP.top]);
  const [x0, x1] = x.domain;
  const [y0, y1] = y.domain;
  const grid = [];
  for (let j = 0; j < GRID; j++) for (let i = 0; i < GRID; i++) grid.push([x0 + ((i + 0.5) * (x1 - x0)) / GRID, y0 + ((j + 0.5) * (y1 - y0)) / GRID]);
  const answers = [];
  for (let start = 0; start < grid.length; start += BATCH) answers.push(await predictRows(model.id, grid.slice(start, start + BATCH), null, signal));
  const predictions = answers.flatMap((a) => a.predictions);
  const valueRange = model.task === "regression" ? [Math.min(...predictions), Math.max(...predictions)] : null;
  const outputs = answers.flatMap((a) => classify(model, a, valueRange));
  const cellW = (MAP.right - MAP.left) / GRID;
  const cellH = (MAP.bottom - MAP.top) / GRID;
  const cells = s("g", { class: "cells" });
  grid.forEach(([gx, gy], k) => {
    cells.append(s("rect", { x: x(gx) - cellW / 2, y: y(gy) - cellH / 2, width: cellW + 0.4, height: cellH + 0.4, fill: regionColor(model, outputs[k]), class: "cell" }));
  });
  const points = s("g", { class: "points" });
  const cursor = s("circle", { r: 5, class: "cursor", visibility: "hidden" });
  const [xName, yName] = model.feature_names;
  const svg = s("svg", { viewBox: `0 0 ${MAP.width} ${MAP.height}`, role: "application", tabindex: 0, id: "region-map",
    "aria-label": `decision regions over ${xName} and ${yName}; click, or move with the arrow keys and press Enter, to predict a point` },
  s("title", {}, "Decision regions"), cells, axes(x, y, MAP, { xLabel: xName, yLabel: yName, gridLines: false }), points, cursor);

  const drawPoints = (rows, answer) => {
    rows.forEach(([px, py], i) => {
      const classifier = model.task === "classification";
      const radius = classifier ? answer.certified_radius[i] : 0;
      const g = s("g", { class: "point", "data-radius": radius });
      if (radius > 0) {
        // the disc in input units: an ellipse on screen when the two axes have different scales
        g.append(s("ellipse", { cx: x(px), cy: y(py), rx: Math.abs(x(px + radius) - x(px)), ry: Math.abs(y(py + radius) - y(py)), class: "disc" }));
      }
      g.append(s("circle", { cx: x(px), cy: y(py), r: 4, class: "dot" }));
      g.append(s("title", {}, `(${fmt(px)}, ${fmt(py)}) → ${answer.predictions[i]}${classifier ? `, certified radius ${fmt(radius)}` : ""}`));
      points.append(g);
    });
  };
  const predictAt = async (px, py) => {
    const rows = [[px, py]];
    const answer = await predictRows(model.id, rows, epsilonOf(), signal);
    drawPoints(rows, answer);
    onPoints(rows, answer);
  };
  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * MAP.width;
    const py = ((event.clientY - box.top) / box.height) * MAP.height;
    if (px < MAP.left || px > MAP.right || py < MAP.top || py > MAP.bottom) return;
    predictAt(x.invert(px), y.invert(py)).catch(onPoints.fail);
  });
  let at = [(MAP.left + MAP.right) / 2, (MAP.top + MAP.bottom) / 2];
  svg.addEventListener("keydown", (event) => {
    const step = { ArrowLeft: [-cellW, 0], ArrowRight: [cellW, 0], ArrowUp: [0, -cellH], ArrowDown: [0, cellH] }[event.key];
    if (step) {
      event.preventDefault();
      at = [Math.min(MAP.right, Math.max(MAP.left, at[0] + step[0])), Math.min(MAP.bottom, Math.max(MAP.top, at[1] + step[1]))];
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      predictAt(x.invert(at[0]), y.invert(at[1])).catch(onPoints.fail);
    } else return;
    cursor.setAttribute("cx", at[0]);
    cursor.setAttribute("cy", at[1]);
    cursor.setAttribute("visibility", "visible");
  });
  const legend = model.task === "classification"
    ? h("ul", { class: "legend" }, model.classes.map((c, i) => h("li", {}, h("span", { class: "swatch", "data-color": PALETTE[i % PALETTE.length] }), `class ${c}`)))
    : h("p", { class: "muted" }, `colour: prediction from ${fmt(valueRange[0])} (blue) to ${fmt(valueRange[1])} (red)`);
  for (const swatch of legend.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
  return { figure: h("figure", { class: "chart region", "data-chart": "regions", "data-cells": grid.length }, svg, legend), drawPoints };
}

export async function render(view, _params, { signal, showProblem, query }) {
  const models = await apiList("/v1/models", { signal });
  if (!models.length) {
    view.replaceChildren(h("section", { class: "card" }, h("h1", {}, "Predict"), h("p", { class: "muted" }, "No models yet.")));
    return;
  }
  const wanted = query.get("model");
  const model = models.find((m) => m.id === wanted) || (wanted ? await api(`/v1/models/${encodeURIComponent(wanted)}`, { signal }) : models[0]);
  const select = h("select", { id: "predict-model" }, models.map((m) =>
    h("option", { value: m.id, selected: m.id === model.id }, `${m.id.slice(0, 12)} · ${m.task} · ${m.feature_names.length} features`)));
  select.addEventListener("change", () => {
    history.replaceState({}, "", `/ui/predict?model=${select.value}`);
    window.dispatchEvent(new PopStateEvent("popstate"));
  });
  const textarea = h("textarea", { id: "predict-rows", rows: 6, spellcheck: "false", placeholder: `${model.feature_names.join(",")}\n…one row per line` });
  const file = h("input", { type: "file", id: "predict-file", accept: ".csv,text/csv,text/plain" });
  file.addEventListener("change", async () => {
    if (file.files.length) textarea.value = await file.files[0].text();
  });
  const epsilon = h("input", { type: "number", id: "predict-epsilon", min: 0, step: "any", value: "0.1" });
  const epsilonOf = () => (epsilon.value === "" ? null : Number(epsilon.value));
  const submit = h("button", { type: "submit", id: "predict-submit" }, "Predict");
  const results = h("div", { class: "table-wrap", id: "predict-output" });
  const mapSlot = h("div", { class: "map-slot" });
  const form = h("form", { class: "predict-form", id: "predict-form" },
    h("label", {}, "Model ", select),
    h("label", { for: "predict-rows" }, `Rows (${model.feature_names.join(", ")}), comma separated; a header line naming the features is allowed`),
    textarea,
    h("div", { class: "row" }, h("label", {}, "…or a CSV file ", file), h("label", {}, "ε (l2, for the output bound) ", epsilon), submit));
  view.replaceChildren(
    h("h1", {}, "Predict"),
    h("div", { class: "playground" }, h("section", { class: "card", "aria-label": "Inputs" }, form, results), mapSlot),
  );

  let map = null;
  const clicked = [];
  const clickedSlot = h("div", { class: "table-wrap", id: "clicked-output" });
  const onPoints = (rows, answer) => {
    clicked.push({ rows, answer });
    const merged = {
      ...answer,
      predictions: clicked.flatMap((c) => c.answer.predictions),
      certified_radius: answer.certified_radius && clicked.flatMap((c) => c.answer.certified_radius),
      output_bounds: answer.output_bounds && clicked.flatMap((c) => c.answer.output_bounds),
      rounding_bound: clicked.flatMap((c) => c.answer.rounding_bound),
    };
    const table = resultsTable(model, clicked.flatMap((c) => c.rows), merged);
    table.id = "clicked-results";
    clickedSlot.replaceChildren(h("h3", {}, "Points from the map"), table);
  };
  onPoints.fail = showProblem;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const rows = parseRows(textarea.value, model.feature_names);
      const answer = await predictRows(model.id, rows, epsilonOf(), signal);
      results.replaceChildren(resultsTable(model, rows, answer));
      map?.drawPoints(rows, answer);
    } catch (error) {
      showProblem(error);
    } finally {
      submit.disabled = false;
    }
  });

  if (model.feature_names.length !== 2) {
    mapSlot.replaceChildren(h("section", { class: "card muted" }, `The region map is drawn for models with 2 input features; this one has ${model.feature_names.length}.`));
    return;
  }
  mapSlot.replaceChildren(h("section", { class: "card", "aria-label": "Decision regions" }, h("h2", {}, model.task === "classification" ? "Decision regions" : "Prediction map"),
    h("p", { class: "muted map-placeholder" }, "Evaluating the map through the predict API…")));
  let ranges = [{ min: -3, max: 3 }, { min: -3, max: 3 }];
  let rangeNote = "The model's dataset was deleted: the map covers [-3, 3]².";
  if (model.dataset_id) {
    try {
      ranges = (await api(`/v1/datasets/${encodeURIComponent(model.dataset_id)}/preview?rows=1`, { signal })).feature_ranges;
      rangeNote = "Over the range of the training data.";
    } catch (error) {
      if (error.status !== 404) throw error;
    }
  }
  map = await regionMap(model, ranges, epsilonOf, onPoints, signal);
  mapSlot.replaceChildren(h("section", { class: "card", "aria-label": "Decision regions" },
    h("h2", {}, model.task === "classification" ? "Decision regions" : "Prediction map"),
    h("p", { class: "muted" }, rangeNote, model.task === "classification" ? " Click a point: the disc is its certified radius; the class cannot change inside it." : " Click a point to predict it."),
    map.figure, clickedSlot));
}
