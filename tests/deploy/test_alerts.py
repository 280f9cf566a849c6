"""deploy/alerts.yml: checked and unit-tested by Debian's promtool (deploy/alerts.test.yml),
loaded by deploy/prometheus.yml, and mounted where that file says in the compose stack. (That
every metric a rule reads is exported: test_metric_names.py, against the running services.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .files import ALERTS, ROOT, alert_rules
from .test_files import run, service

PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
UNIT_TESTS = ROOT / "deploy" / "alerts.test.yml"
# What the issue asks to be alerted on.
WANTED = {
    "VerbatimNoReadyWorker", "VerbatimQueueWaitHigh", "VerbatimJobsFailing",
    "VerbatimWebhooksFailing", "VerbatimRedisUnavailable", "VerbatimStorageUnavailable",
    "VerbatimLiveWorkerMissing", "VerbatimModelQueueStalled",
}


def rules() -> list[dict[str, Any]]:
    return alert_rules(yaml.safe_load(ALERTS.read_text()))


def test_promtool_checks_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_changed_rule(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: with the failing-jobs threshold raised past the tested
    failure rate, they do."""
    text = ALERTS.read_text()
    assert text.count("> 0.1\n") == 1
    (tmp_path / "alerts.yml").write_text(text.replace("> 0.1\n", "> 0.6\n"))
    (tmp_path / "alerts.test.yml").write_text(UNIT_TESTS.read_text())
    result = run(promtool, "test", "rules", str(tmp_path / "alerts.test.yml"))
    assert result.returncode != 0
    assert "alertname: VerbatimJobsFailing" in result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for group in tests["tests"]:
        for case in group["alert_rule_test"]:
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert WANTED <= names
    assert firing == names, names - firing
    assert quiet == names, names - quiet


def test_every_alert_says_what_and_how_bad() -> None:
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert rule.get("for"), f"{rule['alert']}: a blip should not page"


def test_prometheus_loads_the_rules_and_scrapes_the_live_workers(promtool: str) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == [ALERTS.name]  # relative to prometheus.yml
    result = run(promtool, "check", "config", str(PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    mounts = dict(v.removesuffix(":ro").split(":") for v in service("prometheus")["volumes"]
                  if v.startswith("./"))
    loaded = Path(mounts["./deploy/prometheus.yml"]).parent / ALERTS.name
    assert mounts["./deploy/alerts.yml"] == str(loaded)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    [live] = jobs["verbatim-live-worker"]["dns_sd_configs"]
    live_worker = service("live-worker")
    assert live["names"] == live_worker["networks"]["default"]["aliases"]
    port = live_worker["environment"]["VERBATIM_WORKER_METRICS_PORT"]
    assert str(live["port"]) == port
    assert port in live_worker["expose"]
