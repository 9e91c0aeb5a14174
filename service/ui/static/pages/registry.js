// Registry: the tenant's registered names with their aliases; a name's page lists its versions
// (each linking to its model) and the alias history: who moved which alias, from which version
// to which, and when. Everything shown is text (h() makes text nodes), whatever a description holds.

import { api, apiList } from "../api.js";
import { facts, h, num, section, when } from "../dom.js";

const modelLink = (id) => h("a", { href: `/ui/models/${id}`, "data-link": true, class: "mono" }, id.slice(0, 12));
const nameLink = (name) => h("a", { href: `/ui/registry/${encodeURIComponent(name)}`, "data-link": true }, name);
const reference = (text) => h("code", { class: "alias" }, text);

function aliasList(name, aliases) {
  const entries = Object.entries(aliases);
  if (!entries.length) return "—";
  return entries.map(([alias, version], i) => [i ? " " : null,
    h("span", { "data-alias": alias, "data-version": version }, reference(`${name}@${alias}`), ` → v${version}`)]);
}

async function renderList(view, signal) {
  const names = await apiList("/v1/registered-models", { signal });
  const rows = names.map((m) => h("tr", { "data-name": m.name },
    h("td", {}, nameLink(m.name)),
    h("td", { class: "right" }, num(m.latest_version, { "data-field": "latest_version" })),
    h("td", { "data-field": "aliases" }, aliasList(m.name, m.aliases)),
    h("td", { class: "description", "data-field": "description" }, m.description ?? "—"),
    h("td", {}, when(m.updated_at)),
  ));
  view.replaceChildren(h("section", { class: "card" }, h("h1", {}, "Registry"),
    h("p", { class: "muted" }, "Every /v1/models route and /v2 accept ", reference("NAME"), " (its production alias, else its latest version), ",
      reference("NAME@ALIAS"), " and ", reference("NAME/versions/N"), "."),
    names.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "list", id: "registry-table" },
          h("caption", { class: "visually-hidden" }, "Registered models"),
          h("thead", {}, h("tr", {}, ["Name", "Latest version", "Aliases", "Description", "Updated"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows)))
      : h("p", { class: "muted" }, "No registered models yet: POST /v1/registered-models, or a job's register_as.")));
}

function versionsTable(name, versions) {
  return h("div", { class: "table-wrap" }, h("table", { class: "list", id: "versions-table" },
    h("caption", { class: "visually-hidden" }, `Versions of ${name}`),
    h("thead", {}, h("tr", {}, ["Version", "Model", "Task", "Certified L (l2)", "Aliases", "Created by", "Created"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, versions.map((v) => h("tr", { "data-version": v.version },
      h("td", { class: "right" }, h("a", { href: `/ui/models/${encodeURIComponent(`${name}/versions/${v.version}`)}`, "data-link": true }, `v${v.version}`)),
      h("td", { "data-field": "model" }, modelLink(v.model_id)),
      h("td", {}, v.task),
      h("td", { class: "right" }, num(v.lipschitz_bound)),
      h("td", { "data-field": "aliases" }, v.aliases.length ? v.aliases.map((a, i) => [i ? " " : null, reference(`${name}@${a}`)]) : "—"),
      h("td", { class: "mono", "data-field": "created_by" }, v.created_by),
      h("td", {}, when(v.created_at)),
    )))));
}

const versionText = (version) => (version === null || version === undefined ? "—" : `v${version}`);

function historyTable(name, events) {
  if (!events.length) return h("p", { class: "muted" }, "No alias has been set yet.");
  // newest first: the last move is the one that decides what NAME@ALIAS serves now
  return h("div", { class: "table-wrap" }, h("table", { class: "list", id: "alias-events-table" },
    h("caption", { class: "visually-hidden" }, `Alias moves of ${name}`),
    h("thead", {}, h("tr", {}, ["When", "Alias", "From", "To", "Who"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, [...events].reverse().map((e) => h("tr", { "data-alias": e.alias },
      h("td", {}, when(e.at)),
      h("td", {}, reference(`${name}@${e.alias}`)),
      h("td", { "data-field": "from" }, versionText(e.from_version)),
      h("td", { "data-field": "to" }, e.to_version === null ? "removed" : versionText(e.to_version)),
      h("td", { class: "mono", "data-field": "actor" }, e.actor),
    )))));
}

async function renderName(view, name, signal) {
  const path = `/v1/registered-models/${encodeURIComponent(name)}`;
  const [registered, versions, events] = await Promise.all([
    api(path, { signal }),
    apiList(`${path}/versions`, { signal }),
    api(`${path}/alias-events`, { signal }).then((body) => body.items),
  ]);
  view.replaceChildren(
    h("div", { class: "page-head" }, h("h1", {}, "Registered model ", h("span", { id: "registered-name" }, registered.name)),
      h("div", { class: "actions" }, h("a", { href: "/ui/registry", "data-link": true, class: "button" }, "All names"))),
    section("Summary", facts([
      ["Description", h("span", { id: "registered-description", class: "description" }, registered.description ?? "—")],
      ["Latest version", num(registered.latest_version)],
      ["Aliases", h("span", { id: "registered-aliases" }, aliasList(registered.name, registered.aliases))],
      ["Created", when(registered.created_at)],
      ["Updated", when(registered.updated_at)],
    ])),
    section("Versions", versions.length ? versionsTable(registered.name, versions) : h("p", { class: "muted" }, "No versions yet.")),
    section("Alias history", historyTable(registered.name, events)),
  );
}

export async function render(view, [name], { signal }) {
  if (name === undefined) return renderList(view, signal);
  return renderName(view, name, signal);
}
