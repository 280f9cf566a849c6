"""Every metric the Grafana dashboard and the alert rules query is one that the running services
really export: the API, a transcription worker, the I/O worker and a live worker, started on a
real Redis as in production (tests/conftest.py), scraped after a job that went through all of
them (a webhook delivered), so that the series they create on first use exist."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from receivers import Receiver, webhook_receiver
from support import DATA, Process, submit, wait_for_job

from worker import metrics as worker_metrics

from .files import ALERTS, DASHBOARD, Selector, alert_rules, dashboard_queries, selectors

Exported = dict[str, set[str]]
"""Sample name (`_bucket`, `_total`, ... included) -> the label names its samples carry."""


def exported(text: str, into: Exported) -> None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            into.setdefault(sample.name, set()).update(sample.labels)


def gpu_names() -> Exported:
    """What the worker's GPU collector exports, from NVML's answers (made up here: NVML
    needs a GPU, and these machines have none)."""
    memory = SimpleNamespace(used=1 << 30, total=16 << 30)
    nvml = SimpleNamespace(nvmlDeviceGetHandleByIndex=lambda index: index,
                           nvmlDeviceGetMemoryInfo=lambda handle: memory)
    names: Exported = {}
    for family in worker_metrics._GpuMemory(nvml, 1).collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


@pytest.fixture(scope="module")
def scraped(
    client: httpx.Client, api_url: str, worker: Process, io_worker: Process,
    live_worker: Process,
) -> Exported:
    """Every service's /metrics after a job whose webhook was delivered."""
    with webhook_receiver(Receiver()) as receiver:
        job = wait_for_job(client, submit(client, DATA / "jfk.flac",
                                          webhook_url=receiver.url)["id"])
        assert job["status"] == "completed", job
        receiver.wait_for(1)
    names: Exported = {}
    for url in (f"{api_url}/metrics", worker.metrics_url, io_worker.metrics_url,
                live_worker.metrics_url):
        assert url, "every service serves /metrics"
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, url
        exported(response.text, names)
    if worker_metrics.gpu_count() == 0:  # else the worker's scrape had them
        assert not {n for n in names if "gpu" in n}
        for name, labels in gpu_names().items():
            names[name] = labels
    return names


def queried() -> dict[str, list[Selector]]:
    """Where each selector is used -> the selectors there."""
    found: dict[str, list[Selector]] = {}
    for query in dashboard_queries(json.loads(DASHBOARD.read_text())):
        found.setdefault(f"panel {query.panel!r}", []).extend(selectors(query.expr))
    for rule in alert_rules(yaml.safe_load(ALERTS.read_text())):
        found.setdefault(f"alert {rule['alert']}", []).extend(selectors(rule["expr"]))
    return found


def test_every_metric_the_dashboard_and_alerts_query_is_exported(scraped: Exported) -> None:
    missing = {
        where: sorted({s.metric for s in found if s.metric not in scraped})
        for where, found in queried().items()
    }
    assert not {where: names for where, names in missing.items() if names}


def test_every_label_they_match_or_group_by_is_exported(scraped: Exported) -> None:
    wrong = {
        f"{where}: {s.metric}": sorted(s.labels - scraped[s.metric])
        for where, found in queried().items() for s in found
        if s.metric in scraped and s.labels - scraped[s.metric]
    }
    assert not wrong


def test_the_check_sees_a_name_that_nobody_exports(scraped: Exported) -> None:
    """The comparison above can fail: a misspelt name, as a panel might have it, is caught."""
    [selector] = selectors("sum(rate(verbatim_worker_jobs_complete_total[5m]))")
    assert selector.metric not in scraped
    assert "verbatim_worker_jobs_completed_total" in scraped
