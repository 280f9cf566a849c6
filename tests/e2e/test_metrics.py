"""Prometheus metrics of the API and the worker, scraped and parsed as Prometheus would."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
from live_client import Streamer, events_until_end, pcm16, started_session, ws_url
from prometheus_client.parser import text_string_to_metric_families
from support import (
    DATA,
    Process,
    queue_damaged_upload,
    start_api,
    submit,
    wait_for_job,
    wait_until,
)

JFK = DATA / "jfk.flac"

API_FAMILIES = {
    "verbatim_http_requests": "counter",
    "verbatim_http_request_duration_seconds": "histogram",
    "verbatim_jobs_submitted": "counter",
    "verbatim_upload_bytes": "counter",
    "verbatim_queue_depth": "gauge",
    "verbatim_jobs": "gauge",
    "verbatim_workers_ready": "gauge",
    "verbatim_redis_up": "gauge",
    "verbatim_storage_up": "gauge",
}
WORKER_FAMILIES = {
    "verbatim_worker_jobs_completed": "counter",
    "verbatim_worker_jobs_failed": "counter",
    "verbatim_worker_transcription_seconds": "histogram",
    "verbatim_worker_audio_seconds": "counter",
    "verbatim_worker_realtime_factor": "histogram",
    "verbatim_worker_model_load_seconds": "gauge",
    "verbatim_worker_models_loaded": "gauge",
    "verbatim_worker_jobs_in_flight": "gauge",
    "verbatim_worker_queue_wait_seconds": "histogram",
    "verbatim_worker_slots": "gauge",
    # Built with the others; a live worker sets them (`test_live_worker_reports_its_sessions`).
    "verbatim_live_worker_slots": "gauge",
    "verbatim_live_sessions_in_flight": "gauge",
}
# Reported only where NVML sees a GPU.
GPU_FAMILIES = {"verbatim_worker_gpu_memory_bytes", "verbatim_worker_gpu_memory_capacity_bytes"}


class Scrape:
    """One scrape's families and samples."""

    def __init__(self, url: str) -> None:
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        self.families = {f.name: f for f in text_string_to_metric_families(response.text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named `sample` whose labels include `labels`; 0 if none."""
        return sum(
            s.value for f in self.families.values() for s in f.samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    def labels(self, sample: str, name: str) -> set[str]:
        return {s.labels[name] for f in self.families.values() for s in f.samples
                if s.name == sample}


@pytest.fixture(scope="module")
def scrapes(
    client: httpx.Client, api_url: str, worker: Process, service_env: dict[str, str]
) -> tuple[Scrape, Scrape, Scrape, Scrape]:
    """API and worker scrapes before and after one good job, one failed job and some 404s."""
    assert worker.metrics_url
    api_before, worker_before = Scrape(f"{api_url}/metrics"), Scrape(worker.metrics_url)
    good = wait_for_job(client, submit(client, JFK)["id"])
    assert good["status"] == "completed", good
    queue_damaged_upload(service_env, "e" * 32)
    bad = wait_for_job(client, "e" * 32)
    assert bad["error"]["code"] == "decode_error", bad
    assert client.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    return api_before, Scrape(f"{api_url}/metrics"), worker_before, Scrape(worker.metrics_url)


def test_api_counts_requests_by_route_template(scrapes: tuple[Scrape, ...]) -> None:
    before, after, _, _ = scrapes

    def moved(**labels: str) -> float:
        name = "verbatim_http_requests_total"
        return after.value(name, **labels) - before.value(name, **labels)

    assert moved(method="POST", route="/v1/jobs", status="202") == 1
    assert moved(method="GET", route="/v1/jobs/{job_id}", status="200") >= 2  # the polling
    assert moved(method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    assert moved(method="GET", route="unmatched", status="404") == 1
    routes = after.labels("verbatim_http_requests_total", "route")
    assert not [r for r in routes if re.search("[0-9a-f]{32}|/no/such", r)], routes
    count = "verbatim_http_request_duration_seconds_count"
    labels = {"method": "POST", "route": "/v1/jobs"}
    assert after.value(count, **labels) - before.value(count, **labels) == 1


def test_api_counts_submissions_and_reads_redis(scrapes: tuple[Scrape, ...]) -> None:
    before, after, _, _ = scrapes
    assert after.value("verbatim_jobs_submitted_total") - before.value(
        "verbatim_jobs_submitted_total") == 1
    uploaded = after.value("verbatim_upload_bytes_total") - before.value(
        "verbatim_upload_bytes_total")
    assert uploaded == JFK.stat().st_size
    for status in ("completed", "failed"):
        grew = after.value("verbatim_jobs", status=status) - before.value(
            "verbatim_jobs", status=status)
        assert grew == 1, status
    assert after.labels("verbatim_jobs", "status") == {
        "fetching", "queued", "processing", "completed", "failed"}
    assert "verbatim_queue_depth" in after.families
    assert after.value("verbatim_queue_depth") == 0  # the worker has taken everything
    assert after.labels("verbatim_queue_depth", "priority") == {str(p) for p in range(10)}
    assert after.labels("verbatim_queue_depth", "model") == {"base", "tiny.en"}  # the catalogue
    assert after.value("verbatim_workers_ready") >= 1  # the session's worker, at least
    assert after.value("verbatim_redis_up") == 1
    assert after.value("verbatim_storage_up") == 1


def test_worker_counts_jobs_audio_and_time(scrapes: tuple[Scrape, ...]) -> None:
    _, _, before, after = scrapes

    def moved(sample: str, **labels: str) -> float:
        return after.value(sample, **labels) - before.value(sample, **labels)

    assert moved("verbatim_worker_jobs_completed_total") == 1
    assert moved("verbatim_worker_jobs_failed_total", code="decode_error") == 1
    assert moved("verbatim_worker_transcription_seconds_count") == 1
    assert moved("verbatim_worker_transcription_seconds_sum") > 0
    assert moved("verbatim_worker_audio_seconds_total") == pytest.approx(11.0, abs=0.1)
    assert moved("verbatim_worker_realtime_factor_count") == 1
    assert after.value("verbatim_worker_model_load_seconds") > 0
    assert after.value("verbatim_worker_models_loaded", model="base") == 1  # its one process
    assert after.value("verbatim_worker_jobs_in_flight") == 0
    assert after.value("verbatim_worker_slots") == 1  # --concurrency 1
    assert after.value("verbatim_live_worker_slots") == 0  # not a live worker


def test_worker_observes_each_jobs_wait_in_the_queue(
    client: httpx.Client, worker: Process
) -> None:
    """The wait observed is the job's own: from its creation to the start of its attempt, as
    its record shows them, under the priority it was queued at (1: a new job, no backlog)."""
    assert worker.metrics_url
    before = Scrape(worker.metrics_url)
    job = wait_for_job(client, submit(client, JFK)["id"])
    assert job["status"] == "completed", job
    after = Scrape(worker.metrics_url)
    waited = (datetime.fromisoformat(job["started_at"])
              - datetime.fromisoformat(job["created_at"])).total_seconds()
    count = "verbatim_worker_queue_wait_seconds_count"
    total = "verbatim_worker_queue_wait_seconds_sum"
    assert after.value(count, priority="1") - before.value(count, priority="1") == 1
    assert after.value(count) - before.value(count) == 1
    assert after.value(total, priority="1") - before.value(total, priority="1") == pytest.approx(
        waited, abs=0.002)
    assert waited >= 0


def test_names_follow_prometheus_conventions(scrapes: tuple[Scrape, ...]) -> None:
    _, api, _, worker = scrapes
    for scrape, expected in ((api, API_FAMILIES), (worker, WORKER_FAMILIES)):
        ours = {n: f for n, f in scrape.families.items() if n.startswith("verbatim_")}
        found = {n: f.type for n, f in ours.items() if n not in GPU_FAMILIES}
        assert found == expected
        for name, family in ours.items():
            assert re.fullmatch(r"verbatim_[a-z][a-z0-9_]*", name)
            assert not re.search(r"_(ms|milliseconds|kb|mb)(_|$)", name), name
            assert not name.endswith("_total"), name  # the parser strips a counter's _total
            for sample in family.samples:
                assert sample.name.endswith("_total") == (family.type == "counter"), sample


def test_multiprocess_api_adds_up_its_processes(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """`uvicorn --workers 2` with PROMETHEUS_MULTIPROC_DIR: whichever process answers a scrape
    reports the requests of both, and the Redis gauges once, not once per process."""
    url = service_env["VERBATIM_REDIS_URL"].rsplit("/", 1)[0] + "/3"  # no worker consumes it
    (tmp_path / "prometheus").mkdir()
    env = service_env | {
        "VERBATIM_REDIS_URL": url,
        "VERBATIM_DATA_DIR": str(tmp_path / "data"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    queue_db = redis.Redis.from_url(url)
    queue_db.flushdb()
    api, base = start_api(env, tmp_path / "api.log", "--workers", "2")
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(2):
                submit(http, JFK)
        sent, pids = spread_requests(base, api)
        assert len(pids) == 2, f"one process answered every request: {pids}"
        scrape = Scrape(f"{base}/metrics")
        labels = {"method": "GET", "route": "/v1/jobs/{job_id}", "status": "404"}
        assert scrape.value("verbatim_http_requests_total", **labels) == sent
        assert scrape.value("verbatim_jobs_submitted_total") == 2
        assert scrape.value("verbatim_queue_depth") == 2
        assert scrape.value("verbatim_jobs", status="queued") == 2
    finally:
        api.stop()
        queue_db.flushdb()
        queue_db.close()


def spread_requests(base: str, api: Process) -> tuple[int, set[int]]:
    """Ask for a job that does not exist on fresh connections, many at once, until both
    processes have answered (the access log names each request's process); returns
    (requests sent, pids seen)."""
    sent, pids = 0, set()
    url = f"{base}/v1/jobs/{'0' * 32}"
    with ThreadPoolExecutor(8) as pool:
        for _ in range(10):
            statuses = pool.map(lambda _: httpx.get(url).status_code, range(40))
            assert set(statuses) == {404}
            sent += 40
            route = "/v1/jobs/{job_id}"
            pids = {r["pid"] for r in json_records(api) if r.get("route") == route}
            if len(pids) == 2:
                break
    return sent, pids


def json_records(process: Process) -> list[dict]:
    """The JSON lines of a log (uvicorn's supervisor process writes a few lines of its own)."""
    return [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]


def test_live_worker_reports_its_sessions(
    api_url: str, live_worker: Process, client: httpx.Client
) -> None:
    """A warm live worker offers its one slot; a session holds it while it runs, and gives
    it back when it ends."""
    assert live_worker.metrics_url
    in_flight = "verbatim_live_sessions_in_flight"

    def held() -> float:
        return Scrape(live_worker.metrics_url).value(in_flight)  # type: ignore[arg-type]

    idle = Scrape(live_worker.metrics_url)
    assert idle.value("verbatim_live_worker_slots") == 1
    wait_until(lambda: held() == 0, "the slot of an earlier session freed", live_worker)
    with started_session(ws_url(api_url)) as (ws, started):
        streamer = Streamer(ws, pcm16(JFK))
        wait_until(lambda: held() == 1, "the session counted in flight", live_worker)
        streamer.thread.join(timeout=120)
        assert events_until_end(ws)[-1][1]["type"] == "done"
    wait_until(lambda: held() == 0, "the session's slot freed", live_worker)
    assert wait_for_job(client, started["job_id"])["status"] == "completed"
    # A live worker runs no batch jobs, and says so.
    assert Scrape(live_worker.metrics_url).value("verbatim_worker_slots") == 0
