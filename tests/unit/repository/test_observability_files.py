"""The observability part of docker-compose: Prometheus and Grafana against what the code serves.

No Docker here either (as in ``test_deployment_files.py``): the files are read and checked
against the code. Prometheus must scrape compose services on the ports they serve metrics
on; Grafana's datasource must point at the prometheus service; every query of the
dashboard must name only metrics the code defines, through the provisioned datasource.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

import lipspline_platform.observability.metrics  # noqa: F401 - registers the job metrics
import service.http.metrics  # noqa: F401 - registers the API metrics
from tests.unit.repository.test_deployment_files import check_lipspline_argv, interpolate

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lipspline.json"
#: series names a query may use: every sample name of our metrics, and the database-read gauge
OUR_SERIES = {
    sample_name
    for family in REGISTRY.collect()
    if family.name.startswith("lipspline_")
    for sample_name in (family.name, f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_count",
                        f"{family.name}_sum")
} | {"lipspline_jobs", "lipspline_jobs_scrape_error"}


def _mounts(service: dict) -> dict[str, Path]:
    """container path -> host path of the service's bind mounts (relative to the compose file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_prometheus_and_grafana_services_mount_files_that_exist() -> None:
    for name in ("prometheus", "grafana"):
        mounts = _mounts(SERVICES[name])
        assert mounts, f"{name} mounts no configuration"
        for target, source in mounts.items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
    assert _mounts(SERVICES["prometheus"])["/etc/prometheus/prometheus.yml"] == PROMETHEUS
    config_flag = [a for a in SERVICES["prometheus"]["command"] if a.startswith("--config.file=")]
    assert config_flag == ["--config.file=/etc/prometheus/prometheus.yml"]


def test_prometheus_scrapes_the_api_and_every_worker_where_they_serve_metrics() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets: dict[str, int] = {}
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                assert name in SERVICES, f"{job['job_name']} scrapes unknown service {name}"
                targets[name] = sd["port"]
    assert targets["api"] == check_lipspline_argv(
        [interpolate(str(x)) for x in SERVICES["api"]["command"]]
    ).port
    env = COMPOSE["x-lipspline-env"]
    for worker in ("worker-cpu", "worker-gpu"):
        assert targets[worker] == int(env["LIPSPLINE_WORKER_METRICS_PORT"]), worker
        assert SERVICES[worker]["environment"] == env


def test_grafana_datasource_points_at_prometheus_and_the_dashboard_is_provisioned() -> None:
    mounts = _mounts(SERVICES["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"][0]
    # Prometheus listens on 9090 unless told otherwise (no --web.listen-address in its command)
    assert not any("listen-address" in a for a in SERVICES["prometheus"]["command"])
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "lipspline.yml").read_text())["providers"][0]
    assert mounts[provider["options"]["path"]] == DASHBOARD.parent
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], panel["title"]


def test_dashboard_shows_what_the_issue_asks_with_metrics_the_code_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for wanted in ("jobs by status", "queue wait", "predict latency", "certificate time"):
        assert wanted in titles, wanted
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    predict = next(p for p in dashboard["panels"] if p["title"] == "Predict latency")
    assert {"p50", "p99"} == {t["legendFormat"] for t in predict["targets"]}
    for expr in exprs:
        for series in re.findall(r"\blipspline_[a-z_]+", expr):
            assert series in OUR_SERIES, f"{series} in {expr!r} is no metric of the code"
        assert expr.count("(") == expr.count(")"), expr
    # the predict panel selects the route *template*, the label the API writes
    assert all('route="/v1/models/{model_id}/predict"' in t["expr"] for t in predict["targets"])
