"""The dashboard (``/ui``) in headless Chromium against a live embedded server.

One embedded deployment for the module (one API process with its embedded worker), with a
trained 2-D classifier (so the playground draws decision regions) and a 3-feature regressor.
The tests walk every page and check what is drawn against what the API says: one curve per
neuron, one bar per bound, the same numbers; a running job's chart gains points and the
cancel button stops it; a bad key shows the API's 401 detail. Every page load records the
browser console (no errors allowed) and every request URL (all must go to the service's origin;
others are aborted, as they would fail on a machine without internet).

Needs Debian's ``chromium`` (``make test`` and ``make chromium`` install it) driven by Playwright for Python;
without them the tests skip, or fail under ``LIPSPLINE_REQUIRE_SERVICES=1`` (CI).
Screenshots of every page at 1280x800 go to a temporary directory (printed), or to
``LIPSPLINE_SCREENSHOT_DIR`` when set (``docs/screenshots`` holds the committed ones).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lipspline.data import make_circle
from tests.support.processes import TERMINAL, Deployment, embedded_env, wait_for_job
from tests.support.services import unavailable

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 30_000

CLASSIFIER_CONFIG = {
    "architecture": {"hidden": [4], "activation": "deepspline"},
    "spline": {"knots": 21, "range": 3.0},
    "objective": {"mode": "bv2", "lambda": 1e-3, "mu": 1e-4},
    "training": {"epochs": 12, "batch_size": 32, "lr": 0.02, "seed": 0, "validation_split": 0.2},
    "device": "cpu",
}
#: 20 neurons: wider than one page of small multiples (16), so the layer gets its selector
REGRESSOR_CONFIG = {**CLASSIFIER_CONFIG, "architecture": {"hidden": [20], "activation": "deepspline"},
                    "training": {**CLASSIFIER_CONFIG["training"], "epochs": 6}}
#: long enough to be watched running (minutes at full length), stopped from the page
LONG_CONFIG = {**CLASSIFIER_CONFIG, "training": {**CLASSIFIER_CONFIG["training"], "epochs": 5000, "batch_size": 4}}
#: a sweep's trials: short, so three of them run one after the other in seconds
SWEEP_CONFIG = {**CLASSIFIER_CONFIG, "training": {**CLASSIFIER_CONFIG["training"], "epochs": 5}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """An embedded deployment of this module's own (the session's shared one also starts PostgreSQL)."""
    workdir = tmp_path_factory.mktemp("dashboard")
    # file:// datasets by reference may name the temporary directory (a dataset page shows where it reads)
    env = embedded_env(workdir, LIPSPLINE_CANCEL_POLL_S="0.2",
                       LIPSPLINE_DATASET_FILE_ROOTS=json.dumps([tempfile.gettempdir()]))
    with Deployment(env, workdir, embedded=True).running() as dep:
        yield dep


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        unavailable(f"chromium is not installed at {CHROMIUM} (make chromium: apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get("LIPSPLINE_SCREENSHOT_DIR")
    directory = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {directory}")
    return directory


def circle_csv(n: int = 400) -> bytes:
    data = make_circle(n, seed=1)
    lines = ["x1,x2,inside"] + [f"{a!r},{b!r},{int(c)}" for (a, b), c in zip(data.X.tolist(), data.y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def regression_body(n: int = 300) -> dict:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(n, 3))
    y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] - 0.25 * x[:, 2]
    return {"name": "waves", "inputs": x.tolist(), "targets": y.tolist(), "task": "regression",
            "feature_names": ["a", "b", "c"]}


def submitted(http: httpx.Client, dataset_id: str, config: dict) -> str:
    response = http.post("/v1/jobs", json={"dataset_id": dataset_id, "config": config})
    assert response.status_code == 202, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def trained(deployment: Deployment) -> dict[str, Any]:
    """A 2-D classifier (registered as ``circle@production``) and a regressor, trained over HTTP."""
    with deployment.client() as http:
        circle = http.post("/v1/datasets", files={"file": ("circle.csv", circle_csv(), "text/csv")},
                           data={"target": "inside", "name": "circle"})
        assert circle.status_code == 201, circle.text
        waves = http.post("/v1/datasets", json=regression_body())
        assert waves.status_code == 201, waves.text
        jobs = [
            submitted(http, circle.json()["id"], CLASSIFIER_CONFIG),
            submitted(http, waves.json()["id"], REGRESSOR_CONFIG),
        ]
        classifier_job, regressor_job = (wait_for_job(http, job_id, TERMINAL) for job_id in jobs)
        assert classifier_job["status"] == regressor_job["status"] == "succeeded", (classifier_job, regressor_job)
        assert http.post("/v1/registered-models", json={"name": "circle"}).status_code == 201
        assert http.post(
            "/v1/registered-models/circle/versions", json={"model_id": classifier_job["model_id"]}
        ).is_success
        assert http.put("/v1/registered-models/circle/aliases/production", json={"version": 1}).is_success
        return {
            "circle": circle.json(),
            "waves": waves.json(),
            "classifier_job": classifier_job,
            "classifier": http.get(f"/v1/models/{classifier_job['model_id']}").json(),
            "regressor": http.get(f"/v1/models/{regressor_job['model_id']}").json(),
        }


def started_sweep(http: httpx.Client, dataset_id: str, base_config: dict, lambdas: list[float]) -> str:
    """A grid sweep over ``objective.lambda``, one trial at a time (the embedded worker runs one job anyway)."""
    body = {"dataset_id": dataset_id, "base_config": base_config, "space": {"objective.lambda": lambdas},
            "strategy": "grid", "budget": {"max_trials": len(lambdas), "max_concurrent": 1},
            "select": {"rule": "max_accuracy"}}
    response = http.post("/v1/sweeps", json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


@dataclass
class Session:
    """One browser page on the dashboard, with what it logged and every URL it asked for."""

    page: Any
    origin: str
    console_errors: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def go(self, path: str) -> None:
        """Navigate inside the app (a link click, as a user would, when the link is on screen)."""
        self.page.goto(self.origin + path)

    def shot(self, directory: Path, name: str) -> None:
        self.page.screenshot(path=str(directory / f"{name}.png"))

    def assert_clean(self) -> None:
        assert self.console_errors == [], self.console_errors
        foreign = [url for url in self.requested if not url.startswith(self.origin + "/")]
        assert self.requested and not foreign, foreign


def open_session(browser: Any, deployment: Deployment, key: str, viewport: dict = VIEWPORT) -> Session:
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    session = Session(page, deployment.url)
    page.on("console", lambda m: m.type == "error" and session.console_errors.append(f"{m.text} @ {m.location}"))
    page.on("pageerror", lambda e: session.console_errors.append(f"page error: {e}"))

    def route(request_route: Any) -> None:
        url = request_route.request.url
        session.requested.append(url)
        if url.startswith(deployment.url + "/"):
            request_route.continue_()
        else:
            request_route.abort()

    page.route("**/*", route)
    page.goto(deployment.url + "/ui")
    page.fill("#api-key", key)
    page.click("#key-save")
    return session


@pytest.fixture()
def dashboard(browser: Any, deployment: Deployment) -> Iterator[Session]:
    session = open_session(browser, deployment, deployment.api_key)
    yield session
    session.page.context.close()


def shown(page: Any, selector: str) -> float:
    """The full-precision number behind a displayed one (``<data value>``)."""
    return float(page.get_attribute(selector, "value"))


def eventually(read: Any, done: Any, timeout_s: float = 60) -> Any:
    """Read until ``done(value)``, at most ``timeout_s`` seconds; the last value."""
    deadline = time.monotonic() + timeout_s
    while not done(value := read()):
        assert time.monotonic() < deadline, f"still {value!r} after {timeout_s}s"
        time.sleep(0.1)
    return value


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12))


def test_jobs_models_datasets_pages_show_what_the_api_says(
    dashboard: Session, deployment: Deployment, trained: dict, screenshots: Path, tmp_path: Path
) -> None:
    page = dashboard.page
    with deployment.client() as http:
        jobs = http.get("/v1/jobs").json()["items"]
        datasets = http.get("/v1/datasets").json()["items"]

    # jobs: one row per job, each with the API's status
    page.wait_for_selector("#jobs-table tbody tr")
    rows = page.eval_on_selector_all(
        "#jobs-table tbody tr", "rs => rs.map(r => [r.dataset.job, r.querySelector('[data-status]').dataset.status])"
    )
    assert {job_id: status for job_id, status in rows} == {j["id"]: j["status"] for j in jobs}
    dashboard.shot(screenshots, "jobs")

    # a finished job: one loss curve per loss term, one point per epoch; attempts and worker host
    job = trained["classifier_job"]
    page.click(f"#jobs-table a[href='/ui/jobs/{job['id']}']")
    page.wait_for_selector("[data-chart=losses] path.series")
    with deployment.client() as http:
        history = http.get(f"/v1/jobs/{job['id']}/metrics").json()["history"]
    terms = history[0]["losses"]
    curves = page.eval_on_selector_all("[data-chart=losses] path.series", "ps => ps.map(p => +p.dataset.points)")
    assert curves == [len(history)] * len([v for v in terms.values() if v > 0])
    assert page.get_attribute("[data-chart=metric-accuracy]", "data-series-count") == "2"
    assert shown(page, "#job-attempts") == job["attempts"]
    assert page.text_content("#job-worker") == job["worker_host"]
    assert page.is_hidden("#cancel-job")
    dashboard.shot(screenshots, "job")

    # datasets: sizes as the API has them; a dataset page previews the first rows
    dashboard.go("/ui/datasets")
    page.wait_for_selector("#datasets-table tbody tr")
    listed = page.eval_on_selector_all(
        "#datasets-table tbody tr",
        "rs => rs.map(r => [r.dataset.dataset, +r.querySelector('[data-field=n_samples]').value])",
    )
    assert dict(listed) == {d["id"]: d["n_samples"] for d in datasets}
    dashboard.shot(screenshots, "datasets")
    circle = trained["circle"]
    page.click(f"#datasets-table a[href='/ui/datasets/{circle['id']}']")
    page.wait_for_selector("#preview-table tbody tr")
    with deployment.client() as http:
        preview = http.get(f"/v1/datasets/{circle['id']}/preview", params={"rows": 20}).json()
    cells = page.eval_on_selector_all(
        "#preview-table tbody tr",
        "rs => rs.map(r => [...r.cells].map(c => c.querySelector('data') ?"
        " +c.querySelector('data').value : c.textContent))",
    )
    assert cells == preview["rows"]
    assert shown(page, "#dataset-rows") == circle["n_samples"]
    dashboard.shot(screenshots, "dataset")

    # delete from the page (press twice: the second press confirms)
    with deployment.client() as http:
        spare = http.post("/v1/datasets", json={"name": "spare", "inputs": [[0.0], [1.0]], "targets": [0, 1]}).json()
    dashboard.go(f"/ui/datasets/{spare['id']}")
    page.click(f"[data-delete='{spare['id']}']")
    page.click(f"[data-delete='{spare['id']}']")
    page.wait_for_selector("#datasets-table")
    with deployment.client() as http:
        assert http.get(f"/v1/datasets/{spare['id']}").status_code == 404
    assert page.query_selector(f"tr[data-dataset='{spare['id']}']") is None

    # a dataset registered by URI (under the temporary directory the deployment shares) says where it is read from
    pq.write_table(pa.table({"x": [0.0, 1.0, 2.0, 3.0], "label": [0, 1, 0, 1]}), tmp_path / "rows.parquet")
    with deployment.client() as http:
        by_uri = http.post("/v1/datasets", json={"uri": f"file://{tmp_path}/rows.parquet", "target": "label"})
    assert by_uri.status_code == 201, by_uri.text
    dashboard.go(f"/ui/datasets/{by_uri.json()['id']}")
    page.wait_for_selector("#dataset-uri")
    assert page.text_content("#dataset-uri") == f"file://{tmp_path}/rows.parquet"
    dashboard.assert_clean()


def test_model_page_draws_every_neuron_and_every_bound(
    dashboard: Session, deployment: Deployment, trained: dict, screenshots: Path
) -> None:
    page = dashboard.page
    model = trained["classifier"]
    dashboard.go("/ui/models")
    page.wait_for_selector("#models-table tbody tr")
    assert page.eval_on_selector_all("#models-table tbody tr", "rs => rs.length") == 2
    dashboard.shot(screenshots, "models")
    page.click(f"#models-table a[href='/ui/models/{model['id']}']")
    page.wait_for_selector(".small-multiples path.curve")
    with deployment.client() as http:
        curves = http.get(f"/v1/models/{model['id']}/activations").json()["layers"]

    # activations: one curve per neuron, its active knots marked, the pre-activation range shaded
    (layer,) = curves
    (sparsity,) = model["sparsity"]["layers"]
    assert (
        page.eval_on_selector_all(".small-multiples[data-layer='0'] path.curve", "ps => ps.length")
        == layer["units"]
        == 4
    )
    knots = page.eval_on_selector_all(
        ".small-multiples[data-layer='0'] figure", "fs => fs.map(f => f.querySelectorAll('circle.knot').length)"
    )
    assert knots == sparsity["active_knots_per_neuron"]
    assert page.eval_on_selector_all(".small-multiples rect.range", "rs => rs.length") == 4

    # certificate: one bar per computed bound and per lower bound, with the API's values
    lipschitz = model["lipschitz"]
    expected = {name: value for name, value in lipschitz["bounds"].items() if value is not None}
    expected |= {"empirical_lower": lipschitz["empirical_lower"], "jacobian_lower": lipschitz["jacobian_lower"]}
    bars = page.eval_on_selector_all(
        "[data-chart=certificate] rect.bar", "rs => rs.map(r => [r.dataset.name, +r.dataset.value])"
    )
    assert dict(bars) == expected and len(bars) == len(expected)
    assert "lipsdp_neuron" in expected  # a net this small gets the verified LipSDP value
    hover = page.eval_on_selector_all(
        "[data-chart=certificate] .bar-row", "gs => gs.map(g => g.querySelector('title').textContent)"
    )
    assert all(": " in line and len(line) > 30 for line in hover)
    assert close(shown(page, "#certified-value"), lipschitz["certified"])
    assert close(shown(page, "#tightness-value"), lipschitz["tightness"])
    assert close(shown(page, "#best-lower-value"), lipschitz["best_lower"])

    # certified robust accuracy: the global curve (and the local one when computed), one point per radius
    curve = model["certified_accuracy"]
    chart = "[data-chart=certified-accuracy]"
    drawn = page.eval_on_selector_all(
        f"{chart} path.series", "ps => ps.map(p => [p.dataset.series, +p.dataset.points])"
    )
    assert len(drawn) == (2 if curve["local"] else 1) and all(n == len(curve["radii"]) for _, n in drawn)
    assert close(shown(page, "#clean-accuracy"), curve["accuracy"])

    # metrics, lineage, registry
    for split in ("train", "validation"):
        assert close(shown(page, f"[data-metric='{split}.accuracy']"), model["metrics"][split]["accuracy"])
    assert page.get_attribute("#lineage-dataset", "href") == f"/ui/datasets/{model['dataset_id']}"
    assert page.get_attribute("#lineage-job", "href") == f"/ui/jobs/{model['job_id']}"
    page.wait_for_selector("#registry-entries")
    assert "circle@production" in page.text_content("#registry-entries")
    dashboard.shot(screenshots, "model")
    page.locator("[data-chart=certificate]").scroll_into_view_if_needed()
    dashboard.shot(screenshots, "model-certificate")
    page.locator(".small-multiples").scroll_into_view_if_needed()
    dashboard.shot(screenshots, "model-activations")

    # downloads: the zip and the ONNX file, fetched with the key
    for fmt, magic in (("zip", b"PK"), ("onnx", None)):
        with page.expect_download() as download:
            page.click(f"#download-{fmt}")
        path = download.value.path()
        assert download.value.suggested_filename == f"lipspline-model-{model['id']}.{fmt}"
        content = Path(path).read_bytes()
        assert len(content) > 100 and (magic is None or content.startswith(magic))

    # a layer wider than a page of small multiples: a selector shows the rest, one curve per neuron in all
    regressor = trained["regressor"]
    dashboard.go(f"/ui/models/{regressor['id']}")
    page.wait_for_selector(".small-multiples path.curve")
    units = page.eval_on_selector_all(".small-multiples path.curve", "ps => ps.map(p => +p.dataset.unit)")
    assert units == list(range(16))
    page.select_option("#layer-0-page", "16")
    page.wait_for_selector(".small-multiples figure[data-unit='19']")
    units = page.eval_on_selector_all(".small-multiples path.curve", "ps => ps.map(p => +p.dataset.unit)")
    assert units == [16, 17, 18, 19]

    # narrow window: nothing wider than the screen (tables scroll inside their own box)
    page.set_viewport_size({"width": 420, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    dashboard.assert_clean()


def test_playground_predicts_with_certified_radius_and_draws_regions(
    dashboard: Session, deployment: Deployment, trained: dict, screenshots: Path
) -> None:
    page = dashboard.page
    classifier, regressor = trained["classifier"], trained["regressor"]
    rows = [[0.1, -0.2], [0.9, 0.85], [-0.5, 0.3]]
    with deployment.client() as http:
        expected = http.post(f"/v1/models/{classifier['id']}/predict", json={"inputs": rows, "epsilon": 0.1}).json()
    dashboard.go(f"/ui/predict?model={classifier['id']}")
    page.wait_for_selector("#region-map .cell")
    assert page.get_attribute("[data-chart=regions]", "data-cells") == str(60 * 60)
    page.fill("#predict-rows", "x1,x2\n" + "\n".join(f"{a},{b}" for a, b in rows))
    page.click("#predict-submit")
    page.wait_for_selector("#predict-results tbody tr")
    table = page.eval_on_selector_all(
        "#predict-results tbody tr",
        "rs => rs.map(r => [r.querySelector('[data-field=prediction]').textContent,"
        " +r.querySelector('[data-field=certified_radius]').value,"
        " +r.querySelector('[data-field=output_bound]').value])",
    )
    assert [t[0] for t in table] == [str(p) for p in expected["predictions"]]
    assert all(close(t[1], r) for t, r in zip(table, expected["certified_radius"], strict=True))
    assert all(close(t[2], b) for t, b in zip(table, expected["output_bounds"], strict=True))
    assert page.eval_on_selector_all("#region-map .point", "ps => ps.length") == len(rows)

    # a clicked point: predicted through the API, its certified disc drawn around it
    box = page.locator("#region-map").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.45)
    page.wait_for_selector("#clicked-results tbody tr")
    clicked = page.eval_on_selector_all("#clicked-results tbody tr td data", "ds => ds.map(d => +d.value)")
    x1, x2, radius = clicked[0], clicked[1], clicked[2]
    with deployment.client() as http:
        answer = http.post(f"/v1/models/{classifier['id']}/predict", json={"inputs": [[x1, x2]]}).json()
    assert close(radius, answer["certified_radius"][0]) and radius > 0
    assert page.eval_on_selector_all("#region-map .point ellipse.disc", "es => es.length") == len(rows) + 1
    dashboard.shot(screenshots, "predict")

    # a regressor with three features: predictions and output bounds, no region map
    dashboard.go(f"/ui/predict?model={regressor['id']}")
    page.wait_for_selector("#predict-rows")
    page.fill("#predict-rows", "0.1,0.2,0.3\n-0.4,0.5,0.0")
    page.fill("#predict-epsilon", "0.05")
    page.click("#predict-submit")
    page.wait_for_selector("#predict-results tbody tr")
    with deployment.client() as http:
        expected = http.post(f"/v1/models/{regressor['id']}/predict",
                             json={"inputs": [[0.1, 0.2, 0.3], [-0.4, 0.5, 0.0]], "epsilon": 0.05}).json()
    values = page.eval_on_selector_all("#predict-results [data-field=prediction] data", "ds => ds.map(d => +d.value)")
    bounds = page.eval_on_selector_all("#predict-results [data-field=output_bound]", "ds => ds.map(d => +d.value)")
    assert all(close(a, b) for a, b in zip(values, expected["predictions"], strict=True))
    assert all(close(a, b) for a, b in zip(bounds, expected["output_bounds"], strict=True))
    assert page.query_selector("#region-map") is None
    dashboard.assert_clean()


def test_a_running_job_is_drawn_live_and_cancelled_from_the_page(
    dashboard: Session, deployment: Deployment, trained: dict, screenshots: Path
) -> None:
    page = dashboard.page
    with deployment.client() as http:
        job_id = submitted(http, trained["circle"]["id"], LONG_CONFIG)
        wait_for_job(http, job_id, {"running"})
    dashboard.go(f"/ui/jobs/{job_id}")
    page.wait_for_selector("#cancel-job:not([hidden])")

    def plotted() -> int:
        return int(page.get_attribute(".chart-slot", "data-epochs") or 0)

    # polled from here: the page's CSP forbids the eval that page.wait_for_function would need
    first = eventually(plotted, lambda n: n >= 2)
    eventually(plotted, lambda n: n > first)
    assert page.eval_on_selector("[data-chart=losses] path.series", "p => +p.dataset.points") > first
    dashboard.shot(screenshots, "job-live")

    page.click("#cancel-job")
    page.wait_for_selector("[data-status=cancelled]")
    with deployment.client() as http:
        job = http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["cancel_requested"] is True
    assert job["progress"]["epoch"] < LONG_CONFIG["training"]["epochs"]
    assert page.is_hidden("#cancel-job")
    dashboard.assert_clean()


def test_a_sweep_is_followed_live_and_draws_its_trade_off(
    dashboard: Session, deployment: Deployment, trained: dict, screenshots: Path
) -> None:
    page = dashboard.page
    with deployment.client() as http:
        # the embedded worker runs one job at a time, and three short trials take about two seconds:
        # a long job ahead of them holds the sweep running, its trials queued, until the page is seen
        blocker = submitted(http, trained["circle"]["id"], LONG_CONFIG)
        wait_for_job(http, blocker, {"running"})
        sweep_id = started_sweep(http, trained["circle"]["id"], SWEEP_CONFIG, [1e-4, 1e-2, 1e-1])
    dashboard.go(f"/ui/sweeps/{sweep_id}")
    page.wait_for_selector("#sweep-facts [data-status=running]")
    page.wait_for_selector("#trials-table tr[data-trial='0'] [data-status=queued]")
    assert page.get_attribute("[data-chart=sweep-trials]", "data-points") == "0"
    assert page.is_visible("#cancel-sweep")
    with deployment.client() as http:
        assert http.post(f"/v1/jobs/{blocker}/cancel").is_success

    # followed without a reload: the page re-reads the sweep until it has ended, then stops
    page.wait_for_selector("#sweep-facts [data-status]:not([data-status=running])", timeout=120_000)
    with deployment.client() as http:
        sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["status"] == "succeeded", sweep
    assert page.get_attribute("#sweep-facts [data-status]", "data-status") == "succeeded"
    assert dashboard.requested.count(f"{dashboard.origin}/ui/sweeps/{sweep_id}") == 1
    assert dashboard.requested.count(f"{dashboard.origin}/v1/sweeps/{sweep_id}") >= 2
    assert page.is_hidden("#cancel-sweep")
    progress = sweep["progress"]
    assert page.get_attribute(".sweep-progress", "data-succeeded") == str(progress["succeeded"])

    # the chart: one point per succeeded trial at (certified bound, score), the front joined, the winner marked
    trials = {t["trial"]: t for t in sweep["trials"]}
    succeeded = {i for i, t in trials.items() if t["status"] == "succeeded"}
    assert len(succeeded) == progress["succeeded"] == progress["planned"] == 3
    chart = "[data-chart=sweep-trials]"
    points = page.eval_on_selector_all(
        f"{chart} circle.point",
        "cs => cs.map(c => [+c.dataset.trial, +c.dataset.x, +c.dataset.y, c.querySelector('title').textContent])",
    )
    assert sorted(p[0] for p in points) == sorted(succeeded)
    for trial, x, y, title in points:
        assert close(x, trials[trial]["certified_lipschitz"]) and close(y, trials[trial]["score"])
        assert title.startswith(f"trial {trial}: objective.lambda = ")
    front = sweep["front"]["lipschitz"]
    line = page.eval_on_selector(f"{chart} path.line", "p => [+p.dataset.points, p.dataset.trials]")
    assert line[0] == len(front) >= 1 and sorted(map(int, line[1].split())) == sorted(p["trial"] for p in front)
    chosen = sweep["selected"]
    assert chosen is not None and chosen["model_id"] == trials[chosen["trial"]]["model_id"], sweep
    marked = page.eval_on_selector_all(f"{chart} circle.point.selected", "cs => cs.map(c => +c.dataset.trial)")
    assert marked == [chosen["trial"]]
    assert page.get_attribute("#selected-model", "href") == f"/ui/models/{chosen['model_id']}"

    # the table: one row per trial with the API's numbers; certified accuracy at the front's radius as the
    # fronts report it; the selected row marked and linking to the selected model
    rows = page.eval_on_selector_all(
        "#trials-table tbody tr",
        """rs => rs.map(r => [+r.dataset.trial, r.querySelector('[data-status]').dataset.status,
            +r.querySelector('[data-field=score]').value, +r.querySelector('[data-field=certified_lipschitz]').value,
            r.querySelector('[data-field=certified_accuracy]').getAttribute('value'),
            [...r.querySelectorAll('[data-front]')].map(m => m.dataset.front), r.classList.contains('selected')])""",
    )
    assert [r[0] for r in rows] == sorted(trials)
    on_front = {name: {p["trial"]: p for p in sweep["front"][name]} for name in ("lipschitz", "certified_accuracy")}
    assert sweep["front"]["radius"] is not None
    for trial, status, score, bound, certified, fronts, selected in rows:
        api_trial = trials[trial]
        assert status == api_trial["status"] and close(score, api_trial["score"])
        assert close(bound, api_trial["certified_lipschitz"])
        assert fronts == [name for name in ("lipschitz", "certified_accuracy") if trial in on_front[name]]
        for points_of_front in on_front.values():
            if trial in points_of_front:
                assert close(float(certified), points_of_front[trial]["certified_accuracy"])
        assert selected == (trial == chosen["trial"])
    chosen_row = f"#trials-table tr[data-trial='{chosen['trial']}']"
    assert page.get_attribute(f"{chosen_row} a[href^='/ui/models/']", "href") == f"/ui/models/{chosen['model_id']}"
    dashboard.shot(screenshots, "sweep")
    page.locator("#trials-table").scroll_into_view_if_needed()
    dashboard.shot(screenshots, "sweep-trials")

    # the list (from the nav): every sweep the API lists, this one with its progress and selected model
    page.click("nav a[data-section=sweeps]")
    page.wait_for_selector(f"#sweeps-table tr[data-sweep='{sweep_id}']")
    with deployment.client() as http:
        listed = http.get("/v1/sweeps").json()["items"]
    assert page.eval_on_selector_all("#sweeps-table tbody tr", "rs => rs.map(r => r.dataset.sweep)") == [
        s["id"] for s in listed
    ]
    row = f"#sweeps-table tr[data-sweep='{sweep_id}']"
    assert page.text_content(f"{row} [data-field=progress]") == f"{progress['succeeded']} / {progress['planned']}"
    assert page.get_attribute(f"{row} [data-status]", "data-status") == "succeeded"
    assert page.get_attribute(f"{row} [data-field=selected] a", "href") == f"/ui/models/{chosen['model_id']}"
    dashboard.shot(screenshots, "sweeps")
    dashboard.assert_clean()


def test_a_running_sweep_is_cancelled_from_its_page(dashboard: Session, deployment: Deployment, trained: dict) -> None:
    page = dashboard.page
    with deployment.client() as http:
        sweep_id = started_sweep(http, trained["circle"]["id"], LONG_CONFIG, [1e-4, 1e-2])
        (first,) = http.get(f"/v1/sweeps/{sweep_id}").json()["trials"]
        wait_for_job(http, first["job_id"], {"running"})
    dashboard.go(f"/ui/sweeps/{sweep_id}")
    page.wait_for_selector("#cancel-sweep:not([hidden])")
    page.click("#cancel-sweep")
    page.wait_for_selector("#sweep-facts [data-status=cancelled]")
    with deployment.client() as http:
        sweep = http.get(f"/v1/sweeps/{sweep_id}").json()
        job = wait_for_job(http, first["job_id"], TERMINAL, timeout_s=60)
    assert sweep["status"] == "cancelled" and sweep["progress"]["succeeded"] == 0 and sweep["selected"] is None
    assert job["status"] == "cancelled" and job["cancel_requested"] is True  # the running trial was stopped
    assert sweep["progress"]["launched"] == 1  # and the second one never launched
    assert page.text_content("#sweep-note") == sweep["note"]
    assert page.is_hidden("#cancel-sweep")
    dashboard.assert_clean()


#: a description that would run script if the page ever wrote it as HTML; it must show as this very text
HOSTILE_TEXT = '<img src=x onerror="document.body.dataset.xss=1"><script>document.body.dataset.xss=2</script>'


def expected_references(registrations: list[dict]) -> list[str]:
    """What the models list shows for a model's registry entries: ``name@alias``, or ``name/versions/N`` if none."""
    return [text for r in registrations for text in ([f"{r['name']}@{a}" for a in r["aliases"]] or [r["reference"]])]


def test_the_registry_page_shows_names_versions_and_who_moved_which_alias(
    dashboard: Session, deployment: Deployment, trained: dict, screenshots: Path
) -> None:
    page = dashboard.page
    classifier, regressor = trained["classifier"], trained["regressor"]
    with deployment.client() as http:
        assert http.post("/v1/registered-models", json={"name": "waves", "description": HOSTILE_TEXT}).is_success
        for model in (regressor, classifier):
            assert http.post("/v1/registered-models/waves/versions", json={"model_id": model["id"]}).is_success
        for alias, version in (("staging", 1), ("staging", 2), ("production", 1)):
            assert http.put(f"/v1/registered-models/waves/aliases/{alias}", json={"version": version}).is_success
        assert http.delete("/v1/registered-models/waves/aliases/staging").status_code == 204
        names = http.get("/v1/registered-models").json()["items"]
        versions = http.get("/v1/registered-models/waves/versions").json()["items"]
        events = http.get("/v1/registered-models/waves/alias-events").json()["items"]
        models = http.get("/v1/models").json()["items"]

    # the list, from the nav: every name with its latest version and aliases, the description as plain text
    page.click("nav a[data-section=registry]")
    page.wait_for_selector("#registry-table tbody tr[data-name='waves']")
    listed = page.eval_on_selector_all(
        "#registry-table tbody tr",
        "rs => rs.map(r => [r.dataset.name, +r.querySelector('[data-field=latest_version]').value,"
        " Object.fromEntries([...r.querySelectorAll('[data-alias]')]"
        ".map(a => [a.dataset.alias, +a.dataset.version]))])",
    )
    assert listed == [[n["name"], n["latest_version"], n["aliases"]] for n in names]
    assert page.text_content("#registry-table tr[data-name='waves'] [data-field=description]") == HOSTILE_TEXT
    assert page.query_selector("#view img, #view script") is None
    assert page.get_attribute("body", "data-xss") is None
    dashboard.shot(screenshots, "registry")

    # a name: its versions (newest first, each linking to its model) and its alias history, newest first
    page.click("#registry-table a[href='/ui/registry/waves']")
    page.wait_for_selector("#alias-events-table tbody tr")
    shown_versions = page.eval_on_selector_all(
        "#versions-table tbody tr",
        "rs => rs.map(r => [+r.dataset.version, r.querySelector('[data-field=model] a').getAttribute('href'),"
        " r.querySelector('[data-field=created_by]').textContent])",
    )
    assert shown_versions == [[v["version"], f"/ui/models/{v['model_id']}", v["created_by"]] for v in versions]
    history = page.eval_on_selector_all(
        "#alias-events-table tbody tr",
        "rs => rs.map(r => [r.dataset.alias, r.querySelector('[data-field=from]').textContent,"
        " r.querySelector('[data-field=to]').textContent, r.querySelector('[data-field=actor]').textContent])",
    )

    def version_text(version: int | None, absent: str) -> str:
        return absent if version is None else f"v{version}"

    assert history == [
        [e["alias"], version_text(e["from_version"], "—"), version_text(e["to_version"], "removed"), e["actor"]]
        for e in reversed(events)
    ]
    assert len(history) == 4 and history[0][2] == "removed"
    assert page.text_content("#registered-description") == HOSTILE_TEXT
    assert page.query_selector("#view img, #view script") is None
    dashboard.shot(screenshots, "registry-name")

    # a version's link opens its model through the reference NAME/versions/N
    page.click("#versions-table tr[data-version='2'] a[href^='/ui/models/waves']")
    page.wait_for_selector("#registry-entries")
    assert page.text_content("h1 .mono") == classifier["id"]
    assert "waves/versions/2" in page.text_content("#registry-entries")

    # the models list: a name / alias column with each model's registry entries
    dashboard.go("/ui/models")
    page.wait_for_selector("#models-table tbody tr")
    column = page.eval_on_selector_all(
        "#models-table tbody tr",
        "rs => rs.map(r => [r.dataset.model,"
        " [...r.querySelectorAll('[data-reference]')].map(a => a.dataset.reference)])",
    )
    assert dict(column) == {m["id"]: expected_references(m["registrations"]) for m in models}
    assert dict(column)[classifier["id"]] == ["circle@production", "waves/versions/2"]
    assert dict(column)[regressor["id"]] == ["waves@production"]
    dashboard.shot(screenshots, "models-registry")
    dashboard.assert_clean()


def test_a_bad_key_shows_the_api_401_detail(browser: Any, deployment: Deployment) -> None:
    session = open_session(browser, deployment, "not-a-real-key")
    try:
        detail = httpx.get(deployment.url + "/v1/jobs", headers={"Authorization": "Bearer not-a-real-key"}).json()
        session.page.wait_for_selector("#problem:not([hidden])")
        assert detail["detail"] in session.page.text_content("#problem") and "401" in session.page.text_content(
            "#problem"
        )
        # the browser logs the refused request itself; nothing else may go wrong
        assert all("401" in error for error in session.console_errors), session.console_errors
        session.console_errors.clear()
        session.assert_clean()
    finally:
        session.page.context.close()
