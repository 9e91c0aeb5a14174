// Small DOM helpers shared by every page: element builders and number formatting.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("button", {class: "x", onclick: fn}, "label"). */
export function h(tag, attrs = {}, ...children) {
  return apply(document.createElement(tag), attrs, children);
}

/** An SVG element, same call shape as h(). */
export function s(tag, attrs = {}, ...children) {
  return apply(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A number as people read it: 4 significant digits, exponent form when very small or large. */
export function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return value > 0 ? "∞" : value < 0 ? "-∞" : "NaN";
  if (Number.isInteger(value) && Math.abs(value) < 1e9) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(digits - 1);
  return String(Number(value.toPrecision(digits)));
}

/** A number shown in a <data> element: the text is rounded, `value` keeps every digit. */
export function num(value, attrs = {}) {
  return h("data", { value: value ?? "", class: "num", ...attrs }, fmt(value));
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

/** A <dl> of label/value pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

export function section(title, ...children) {
  return h("section", { class: "card", "aria-label": title }, h("h2", {}, title), ...children);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

export function progressBar(progress) {
  const epoch = progress?.epoch ?? 0;
  const epochs = progress?.epochs ?? 0;
  return h("progress", { max: epochs || 1, value: epoch, "aria-label": `epoch ${epoch} of ${epochs}` });
}

/** A resource's tags as chips (nothing when it has none); every value is text, never markup. */
export function tagChips(tags) {
  if (!tags || !tags.length) return null;
  return h("span", { class: "tags", "data-field": "tags" }, tags.map((tag) => h("span", { class: "tag" }, tag)));
}

/** A list's name cell content: the resource's name ("—" without one) and its tags. */
export function nameCell(item) {
  const name = item.name
    ? h("span", { class: "resource-name", "data-field": "name" }, item.name)
    : h("span", { class: "muted", "data-field": "name" }, "—");
  return [name, " ", tagChips(item.tags)];
}

/** The name, tags and description of a detail page, as facts() pairs. */
export function labelFacts(item) {
  return [
    ["Name", h("span", { id: "resource-name" }, item.name || "—")],
    ["Tags", tagChips(item.tags) || "—"],
    ["Description", h("span", { class: "description", id: "resource-description" }, item.description || "—")],
  ];
}
