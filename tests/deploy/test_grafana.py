"""deploy/grafana/: the dashboard is what its script builds, reads back into Grafana's own
models, is laid out as Grafana needs, and queries in valid PromQL; its provisioning files point
at the compose stack's Prometheus and at the dashboard where compose mounts it. (That every
metric it queries is exported: test_metric_names.py, against the running services.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .files import DASHBOARD, ROOT, dashboard_queries, selectors
from .test_files import run, service

GRAFANA = ROOT / "deploy" / "grafana"
BOARD: dict[str, Any] = json.loads(DASHBOARD.read_text())
GRID_COLUMNS = 24
# What the issue asks the dashboard to show, and a metric each of those panels must read.
WANTED = {
    "Jobs by status": "verbatim_jobs",
    "Job outcomes": "verbatim_worker_jobs_failed_total",
    "Queue length by model": "verbatim_queue_depth",
    "Queue length by priority": "verbatim_queue_depth",
    "Queue wait by priority (p90)": "verbatim_worker_queue_wait_seconds_bucket",
    "Audio hours per hour": "verbatim_worker_audio_seconds_total",
    "Real-time factor": "verbatim_worker_realtime_factor_bucket",
    "Worker utilisation": "verbatim_worker_slots",
    "Live worker utilisation": "verbatim_live_sessions_in_flight",
    "Model load time": "verbatim_worker_model_load_seconds",
    "GPU memory": "verbatim_worker_gpu_memory_bytes",
    "Webhook attempts": "verbatim_webhook_attempts_total",
    "HTTP errors": "verbatim_http_requests_total",
    "HTTP latency (p95)": "verbatim_http_request_duration_seconds_bucket",
}


def panels() -> list[dict[str, Any]]:
    return list(BOARD["panels"])


def test_the_file_is_what_the_script_builds() -> None:
    built = subprocess.run([sys.executable, str(GRAFANA / "dashboard.py")], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert built == DASHBOARD.read_text(), "run `make dashboard` and commit verbatim.json"


def test_grafanas_models_read_it_back() -> None:
    """grafana-foundation-sdk's models, generated from Grafana's schemas, decode every panel
    into its plugin's type, options included."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models import dashboard, stat, timeseries

    register_default_plugins()
    model = dashboard.Dashboard.from_json(BOARD)
    assert (model.uid, model.title) == ("verbatim", "Verbatim")
    kinds = {"row": dashboard.RowPanel, "stat": dashboard.Panel,
             "timeseries": dashboard.Panel}
    for panel, raw in zip(model.panels or [], panels(), strict=True):
        assert isinstance(panel, kinds[raw["type"]]), raw["title"]
        if raw["type"] == "stat":
            assert isinstance(panel.options, stat.Options), raw["title"]
        if raw["type"] == "timeseries":
            assert isinstance(panel.options, timeseries.Options), raw["title"]


def test_the_fields_grafana_needs() -> None:
    assert BOARD["schemaVersion"] >= 36
    assert BOARD["uid"] == "verbatim"
    assert BOARD["title"]
    [variable] = BOARD["templating"]["list"]
    assert (variable["type"], variable["name"], variable["query"]) == (
        "datasource", "datasource", "prometheus")
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids))
    assert all(isinstance(i, int) and i > 0 for i in ids)
    for panel in panels():
        grid = panel["gridPos"]
        assert min(grid["x"], grid["w"] - 1, grid["h"] - 1) >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        if panel["type"] == "row":
            assert (grid["w"], panel["panels"]) == (GRID_COLUMNS, []), panel["title"]
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all((panel["title"], panel["description"])), panel
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) > 0, panel["title"]
        assert all(t["expr"].strip() and t["legendFormat"] for t in panel["targets"])


def test_panels_do_not_overlap() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in panels():
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_it_shows_what_an_operator_needs() -> None:
    read: dict[str, set[str]] = {}
    for query in dashboard_queries(BOARD):
        read.setdefault(query.panel, set()).update(s.metric for s in selectors(query.expr))
    for title, metric in WANTED.items():
        assert metric in read.get(title, set()), f"{title!r} reads {read.get(title)}"


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """Prometheus's own parser (`promtool check rules`) reads each expression, as a recording
    rule; promql-parser (which finds the metric names) must read it too."""
    queries = dashboard_queries(BOARD)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{index}", "expr": query.expr}
        for index, query in enumerate(queries)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout
    for query in queries:
        assert selectors(query.expr), query


# Provisioning


def test_the_datasource_is_the_compose_prometheus() -> None:
    [source] = yaml.safe_load((GRAFANA / "datasources.yml").read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in " ".join(service("prometheus")["ports"])
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert source["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]


def test_the_dashboard_provider_reads_where_compose_mounts_the_dashboard() -> None:
    [provider] = yaml.safe_load((GRAFANA / "dashboards.yml").read_text())["providers"]
    assert provider["type"] == "file"
    mounts = dict(v.removesuffix(":ro").split(":") for v in service("grafana")["volumes"]
                  if v.startswith("./"))
    assert mounts["./deploy/grafana/verbatim.json"].startswith(provider["options"]["path"] + "/")
    assert mounts["./deploy/grafana/datasources.yml"].startswith(
        "/etc/grafana/provisioning/datasources/")
    assert mounts["./deploy/grafana/dashboards.yml"].startswith(
        "/etc/grafana/provisioning/dashboards/")
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == mounts["./deploy/grafana/verbatim.json"]
