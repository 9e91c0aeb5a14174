// Hand-written SVG charts: line charts (linear or log y), scatter plots (linear or log x),
// log-scale bars, spline small multiples, and the plot frame the decision-region map draws into. No library: each chart is a function
// from data to one <figure>, redrawn whole when the data changes (the figure keeps its size,
// so nothing around it moves).

import { fmt, h, s } from "./dom.js";

export const PALETTE = ["#1d6fb8", "#d1495b", "#2a9d8f", "#e9a03b", "#6a4c93", "#8c564b", "#3d405b", "#17becf"];

/** A map from a domain to pixels, linear or log10; `ticks()` gives readable tick values. */
export function scale([d0, d1], [r0, r1], { log = false } = {}) {
  const f = log ? Math.log10 : (v) => v;
  let a = f(d0);
  let b = f(d1);
  if (a === b) {
    a -= log ? 0.5 : Math.abs(a) * 0.1 || 1;
    b += log ? 0.5 : Math.abs(b) * 0.1 || 1;
  }
  const map = (v) => r0 + ((f(v) - a) / (b - a)) * (r1 - r0);
  map.invert = (px) => {
    const t = a + ((px - r0) / (r1 - r0)) * (b - a);
    return log ? 10 ** t : t;
  };
  map.domain = log ? [10 ** a, 10 ** b] : [a, b];
  map.ticks = (count = 5) => (log ? logTicks(a, b) : linearTicks(a, b, count));
  return map;
}

function linearTicks(a, b, count) {
  const step0 = (b - a) / count;
  const power = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * power).find((m) => m >= step0);
  const ticks = [];
  for (let v = Math.ceil(a / step) * step; v <= b + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function logTicks(a, b) {
  // powers of ten; with 1, 2, 5 of each decade when that alone would leave fewer than three ticks
  const within = (mantissas) => {
    const ticks = [];
    for (let e = Math.floor(a); e <= Math.ceil(b); e++) {
      for (const m of mantissas) {
        const v = m * 10 ** e;
        if (Math.log10(v) >= a - 1e-9 && Math.log10(v) <= b + 1e-9) ticks.push(v);
      }
    }
    return ticks;
  };
  const decades = within([1]);
  if (decades.length >= 3) return decades;
  const fine = within([1, 2, 5]);
  // a span of less than a factor of ~5 (trials with similar bounds) holds at most one of those: plain steps
  return fine.length >= 2 ? fine : linearTicks(10 ** a, 10 ** b, 4);
}

function extent(values, { log = false, pad = 0 } = {}) {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (!finite.length) return log ? [0.1, 10] : [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (log) return [lo / (1 + pad), hi * (1 + pad)];
  const margin = (hi - lo) * pad;
  lo -= margin;
  hi += margin;
  return [lo, hi];
}

/** Axis lines, ticks, tick labels and axis titles for a plot area [left, right] x [top, bottom]. */
export function axes(x, y, box, { xLabel, yLabel, xTicks, yTicks, gridLines = true } = {}) {
  const { left, right, top, bottom } = box;
  const g = s("g", { class: "axes" });
  g.append(s("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis" }));
  g.append(s("line", { x1: left, x2: left, y1: top, y2: bottom, class: "axis" }));
  for (const t of xTicks ?? x.ticks(6)) {
    const px = x(t);
    g.append(s("line", { x1: px, x2: px, y1: bottom, y2: bottom + 4, class: "tick" }));
    g.append(s("text", { x: px, y: bottom + 16, "text-anchor": "middle", class: "tick-label" }, fmt(t, 3)));
  }
  for (const t of yTicks ?? y.ticks(5)) {
    const py = y(t);
    if (gridLines) g.append(s("line", { x1: left, x2: right, y1: py, y2: py, class: "grid" }));
    else g.append(s("line", { x1: left - 4, x2: left, y1: py, y2: py, class: "tick" }));
    g.append(s("text", { x: left - 6, y: py + 4, "text-anchor": "end", class: "tick-label" }, fmt(t, 3)));
  }
  if (xLabel) {
    g.append(s("text", { x: (left + right) / 2, y: bottom + 34, "text-anchor": "middle", class: "axis-label" }, xLabel));
  }
  if (yLabel) {
    const cy = (top + bottom) / 2;
    g.append(s("text", { x: 12, y: cy, transform: `rotate(-90 12 ${cy})`, "text-anchor": "middle", class: "axis-label" }, yLabel));
  }
  return g;
}

function legend(items) {
  return h(
    "ul",
    { class: "legend" },
    items.map(({ name, color, dashed }) =>
      h("li", {}, h("span", { class: `swatch${dashed ? " dashed" : ""}`, "data-color": color }), name),
    ),
  );
}

/** Swatch colours are set through the CSSOM (the page's CSP allows no inline style attributes). */
export function paintSwatches(root) {
  for (const swatch of root.querySelectorAll(".swatch[data-color]")) swatch.style.background = swatch.dataset.color;
}

/**
 * A line chart: series = [{name, points: [[x, y], ...], dashed?}]. One <path class="series"> per
 * series with points; `logY` drops non-positive values (a loss term that is exactly zero).
 */
export function lineChart({ id, title, series, xLabel, yLabel, logY = false, width = 560, height = 260, empty }) {
  const box = { left: 64, right: width - 12, top: 12, bottom: height - 44 };
  const usable = series.map((serie) => ({ ...serie, points: serie.points.filter(([, v]) => Number.isFinite(v) && (!logY || v > 0)) }));
  const drawn = usable.filter((serie) => serie.points.length);
  const xs = drawn.flatMap((serie) => serie.points.map(([v]) => v));
  const ys = drawn.flatMap((serie) => serie.points.map(([, v]) => v));
  const x = scale(extent(xs), [box.left, box.right]);
  const y = scale(extent(ys, { log: logY, pad: logY ? 0.1 : 0.05 }), [box.bottom, box.top], { log: logY });
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${yLabel} against ${xLabel}` });
  svg.append(s("title", {}, title));
  svg.append(axes(x, y, box, { xLabel, yLabel, xTicks: xs.length ? undefined : [], yTicks: ys.length ? undefined : [] }));
  const items = [];
  series.forEach((serie, i) => {
    const color = PALETTE[i % PALETTE.length];
    items.push({ name: serie.name, color, dashed: serie.dashed });
    const points = usable[i].points;
    if (!points.length) return;
    const d = points.map(([px, py], k) => `${k ? "L" : "M"}${x(px).toFixed(2)},${y(py).toFixed(2)}`).join("");
    svg.append(
      s("path", {
        d,
        class: `series${serie.dashed ? " dashed" : ""}`,
        stroke: color,
        "data-series": serie.name,
        "data-points": points.length,
      }),
    );
    if (points.length === 1) svg.append(s("circle", { cx: x(points[0][0]), cy: y(points[0][1]), r: 3, fill: color }));
  });
  if (!drawn.length && empty) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, empty));
  }
  const figure = h("figure", { class: "chart", "data-chart": id, "data-series-count": drawn.length }, h("figcaption", {}, title), svg, legend(items));
  paintSwatches(figure);
  return figure;
}

/**
 * A scatter plot: points = [{x, y, color, r?, title, label?, className?, data?}], one
 * <circle class="point"> each, its <title> shown on hover, `label` written beside it and `data`
 * set as data-* attributes (with data-x, data-y: the full values). `line` = {name, color, points:
 * [[x, y], ...], data?} is one <path class="line"> through its points in the order given, drawn
 * under the points. `logX` leaves out points with x <= 0 (a log axis has no place for them).
 * `legend` = [{name, color}] for the point colours (the line adds its own entry).
 */
export function scatterChart({ id, title, points, line, xLabel, yLabel, logX = false, legend: keys = [], width = 640, height = 320, empty }) {
  const box = { left: 64, right: width - 16, top: 14, bottom: height - 44 };
  const onAxes = (px, py) => Number.isFinite(px) && Number.isFinite(py) && (!logX || px > 0);
  const drawn = points.filter((p) => onAxes(p.x, p.y));
  const path = (line?.points || []).filter(([px, py]) => onAxes(px, py));
  const xs = [...drawn.map((p) => p.x), ...path.map(([v]) => v)];
  const ys = [...drawn.map((p) => p.y), ...path.map(([, v]) => v)];
  const x = scale(extent(xs, { log: logX, pad: logX ? 0.2 : 0.05 }), [box.left, box.right], { log: logX });
  const y = scale(extent(ys, { pad: 0.1 }), [box.bottom, box.top]);
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title}: ${yLabel} against ${xLabel}` });
  svg.append(s("title", {}, title));
  svg.append(axes(x, y, box, { xLabel, yLabel, xTicks: xs.length ? undefined : [], yTicks: ys.length ? undefined : [] }));
  const data = (attrs) => Object.fromEntries(Object.entries(attrs || {}).map(([k, v]) => [`data-${k}`, v]));
  if (path.length) {
    const d = path.map(([px, py], k) => `${k ? "L" : "M"}${x(px).toFixed(2)},${y(py).toFixed(2)}`).join("");
    svg.append(s("path", { d, class: "line", stroke: line.color, "data-points": path.length, ...data(line.data) }));
  }
  for (const p of drawn) {
    const cx = x(p.x);
    const cy = y(p.y);
    svg.append(s("circle", { cx, cy, r: p.r ?? 5, fill: p.color, class: `point ${p.className || ""}`.trim(), "data-x": p.x, "data-y": p.y, ...data(p.data) },
      s("title", {}, p.title)));
    if (p.label) {
      // beside the point, on the side with room for it
      const right = cx < (box.left + box.right) / 2;
      svg.append(s("text", { x: cx + (right ? 10 : -10), y: cy - 8, "text-anchor": right ? "start" : "end", class: "point-label" }, p.label));
    }
  }
  if (!drawn.length && empty) {
    svg.append(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, empty));
  }
  const items = [...keys, ...(line ? [{ name: line.name, color: line.color }] : [])];
  const figure = h("figure", { class: "chart scatter", "data-chart": id, "data-points": drawn.length }, h("figcaption", {}, title), svg, legend(items));
  paintSwatches(figure);
  return figure;
}

/**
 * Horizontal bars on a log scale: items = [{name, value, role, explain}]. Every item with a
 * positive value gets one <rect class="bar">; its <title> is the one-line explanation shown on hover.
 * `marker`: a value drawn as a vertical line across the bars (the certified bound).
 */
export function logBars({ id, title, items, xLabel, marker, width = 640 }) {
  const row = 26;
  const labelWidth = 170;
  const height = 24 + items.length * row + 40;
  const box = { left: labelWidth, right: width - 70, top: 12, bottom: height - 40 };
  const values = items.map((item) => item.value).filter((v) => v > 0);
  const [lo, hi] = extent(values, { log: true, pad: 0.3 });
  const x = scale([lo, hi], [box.left, box.right], { log: true });
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  svg.append(axes(x, scale([0, 1], [box.bottom, box.top]), box, { xLabel, yTicks: [] }));
  items.forEach((item, i) => {
    const top = box.top + 8 + i * row;
    const g = s("g", { class: `bar-row role-${item.role}`, tabindex: 0, "data-name": item.name });
    g.append(s("title", {}, `${item.name}: ${item.explain}`));
    g.append(s("text", { x: labelWidth - 8, y: top + 13, "text-anchor": "end", class: "bar-label" }, item.name));
    if (item.value > 0 && Number.isFinite(item.value)) {
      const end = x(item.value);
      g.append(s("rect", { x: box.left, y: top, width: Math.max(1, end - box.left), height: row - 8, class: "bar", "data-name": item.name, "data-value": item.value }));
      g.append(s("text", { x: end + 4, y: top + 13, class: "bar-value" }, fmt(item.value)));
    } else {
      g.append(s("text", { x: box.left + 4, y: top + 13, class: "bar-value muted" }, item.note || "not computed"));
    }
    svg.append(g);
  });
  if (marker > 0) {
    const px = x(marker);
    svg.append(s("line", { x1: px, x2: px, y1: box.top, y2: box.bottom, class: "marker" }));
  }
  return h("figure", { class: "chart bars", "data-chart": id, "data-series-count": svg.querySelectorAll("rect.bar").length }, h("figcaption", {}, title), svg);
}

/**
 * One neuron's activation: its sampled curve, the training pre-activation range shaded, its active
 * knots marked. `range` = {min, max} or null; `knots` = {x, y, active} for this unit or null.
 */
export function splineChart({ layer, unit, x: xs, y: ys, range, knots, width = 200, height = 160 }) {
  const box = { left: 52, right: width - 8, top: 8, bottom: height - 42 };
  const x = scale([xs[0], xs[xs.length - 1]], [box.left, box.right]);
  const y = scale(extent(ys, { pad: 0.08 }), [box.bottom, box.top]);
  const label = `layer ${layer}, neuron ${unit}`;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `activation of ${label}` });
  if (range) {
    const lo = Math.max(range.min, xs[0]);
    const hi = Math.min(range.max, xs[xs.length - 1]);
    if (hi > lo) {
      svg.append(s("rect", { x: x(lo), y: box.top, width: x(hi) - x(lo), height: box.bottom - box.top, class: "range" },
        s("title", {}, `training pre-activations: ${fmt(range.min)} to ${fmt(range.max)}`)));
    }
  }
  svg.append(axes(x, y, box, { xLabel: "pre-activation z", yLabel: "σ(z)", xTicks: x.ticks(3), yTicks: y.ticks(3) }));
  const d = xs.map((v, k) => `${k ? "L" : "M"}${x(v).toFixed(2)},${y(ys[k]).toFixed(2)}`).join("");
  svg.append(s("path", { d, class: "curve", "data-unit": unit }));
  if (knots) {
    knots.x.forEach((kx, k) => {
      if (!knots.active[k]) return;
      svg.append(s("circle", { cx: x(kx), cy: y(knots.y[k]), r: 3, class: "knot" }, s("title", {}, `active knot at z = ${fmt(kx)}`)));
    });
  }
  const activeCount = knots ? knots.active.filter(Boolean).length : null;
  const caption = knots ? `neuron ${unit} · ${activeCount} active knot${activeCount === 1 ? "" : "s"}` : `neuron ${unit}`;
  return h("figure", { class: "spline", "data-layer": layer, "data-unit": unit, "data-active-knots": activeCount ?? "" }, svg, h("figcaption", {}, caption));
}
