// The dashboard's shell: the API key, client-side routing under /ui, and the error banner.
// Each page is a module with `render(view, params, context)`; the context's `signal` aborts
// whatever the page still has running (streams, polls) when the user navigates away.

import { ApiError, getKey, setKey } from "./api.js";
import { h } from "./dom.js";

const ROUTES = [
  [/^\/ui\/?$/, () => import("./pages/jobs.js"), "jobs"],
  [/^\/ui\/jobs\/?$/, () => import("./pages/jobs.js"), "jobs"],
  [/^\/ui\/jobs\/([^/]+)$/, () => import("./pages/job.js"), "jobs"],
  [/^\/ui\/sweeps\/?$/, () => import("./pages/sweeps.js"), "sweeps"],
  [/^\/ui\/sweeps\/([^/]+)$/, () => import("./pages/sweep.js"), "sweeps"],
  [/^\/ui\/models\/?$/, () => import("./pages/models.js"), "models"],
  [/^\/ui\/models\/(.+)$/, () => import("./pages/model.js"), "models"],
  [/^\/ui\/registry\/?$/, () => import("./pages/registry.js"), "registry"],
  [/^\/ui\/registry\/([^/]+)$/, () => import("./pages/registry.js"), "registry"],
  [/^\/ui\/predict\/?$/, () => import("./pages/predict.js"), "predict"],
  [/^\/ui\/datasets\/?$/, () => import("./pages/datasets.js"), "datasets"],
  [/^\/ui\/datasets\/([^/]+)$/, () => import("./pages/dataset.js"), "datasets"],
];

const view = document.getElementById("view");
const banner = document.getElementById("problem");
let running = null; // the AbortController of the page on screen

/** Show an API problem (its detail, as the API wrote it) or any other error in the banner. */
export function showProblem(error) {
  if (error?.name === "AbortError") return;
  banner.replaceChildren();
  if (error instanceof ApiError) {
    banner.append(h("strong", {}, `${error.status} ${error.problem.title || "Error"}: `), h("span", { class: "detail" }, error.message));
  } else {
    banner.append(h("strong", {}, "Error: "), h("span", { class: "detail" }, String(error?.message || error)));
    console.error(error); // a bug in the page itself, not an API answer: the browser tests fail on it
  }
  banner.hidden = false;
}

export function clearProblem() {
  banner.hidden = true;
  banner.replaceChildren();
}

export function navigate(path) {
  history.pushState({}, "", path);
  render();
}

async function render() {
  running?.abort();
  running = new AbortController();
  const { signal } = running;
  clearProblem();
  const path = location.pathname;
  const match = ROUTES.map(([pattern, load, section]) => [path.match(pattern), load, section]).find(([m]) => m);
  for (const link of document.querySelectorAll("nav a[data-section]")) {
    if (match && link.dataset.section === match[2]) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!getKey()) {
    view.replaceChildren(
      h("section", { class: "card intro" }, h("h1", {}, "LipSpline dashboard"),
        h("p", {}, "Enter an API key above (", h("code", {}, "lipspline keys create --tenant NAME"),
          "). It is kept in this tab's session storage and sent with every call to the API.")),
    );
    document.getElementById("api-key").focus();
    return;
  }
  if (!match) {
    view.replaceChildren(h("section", { class: "card" }, h("h1", {}, "Not found"), h("p", {}, `No page at ${path}.`)));
    return;
  }
  const [found, load] = match;
  const params = found.slice(1).map(decodeURIComponent);
  view.setAttribute("aria-busy", "true");
  try {
    const page = await load();
    await page.render(view, params, { signal, navigate, showProblem, query: new URLSearchParams(location.search) });
  } catch (error) {
    if (!signal.aborted) showProblem(error);
  } finally {
    if (!signal.aborted) view.removeAttribute("aria-busy");
  }
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-link]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(link.getAttribute("href"));
});
window.addEventListener("popstate", render);

const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
keyInput.value = getKey();
keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setKey(keyInput.value.trim());
  render();
});
document.getElementById("key-forget").addEventListener("click", () => {
  setKey("");
  keyInput.value = "";
  render();
});

render();
