"""A `threads` pool runs several jobs at once against the one model its process loads, reports
itself ready for `/readyz` as a pool process would, has every job of a killed worker requeued,
and refuses bad pool settings at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from support import DATA, Process, start_api, start_worker, submit, wait_for_job

from shared.config import Settings
from shared.localredis import LocalRedis

JFK_WORDS = "ask not what your country can do for you"
FAST_HEARTBEATS = {
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "3",
}


@pytest.fixture
def env(service_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """A Redis and a data directory of its own, so that only this test's worker takes jobs."""
    with LocalRedis(tmp_path) as server:
        yield service_env | FAST_HEARTBEATS | {
            "VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(tmp_path / "data")}


@pytest.fixture
def threads_worker(env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    process = start_worker(env, tmp_path / "worker.log", name="threads", pool="threads",
                           concurrency=2)
    yield process
    process.stop()


def test_two_jobs_run_at_once_against_one_model(
    env: dict[str, str], threads_worker: Process, tmp_path: Path
) -> None:
    api, url = start_api(env, tmp_path / "api.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            ids = [submit(client, DATA / "jfk.flac")["id"] for _ in range(2)]
            jobs = [wait_for_job(client, job_id) for job_id in ids]
            texts = [client.get(f"/v1/jobs/{job_id}/transcript.txt").text for job_id in ids]
            ready = client.get("/readyz")
    finally:
        api.stop()
    assert [job["status"] for job in jobs] == ["completed", "completed"]
    for text in texts:
        assert JFK_WORDS in text.lower().replace(",", "")
    first, second = ([datetime.fromisoformat(job[f]) for f in ("started_at", "finished_at")]
                     for job in jobs)
    # Each started before the other finished.
    assert first[0] < second[1]
    assert second[0] < first[1]
    assert threads_worker.output().count('"message": "model loaded"') == 1
    loaded = next(r for r in threads_worker.records() if r.get("message") == "model loaded")
    assert loaded["replicas"] == 2
    assert ready.status_code == 200
    [beat] = ready.json()["workers"]
    # The worker's main process runs the jobs itself: it is both the process and the node.
    assert beat["pid"] == threads_worker.popen.pid
    assert beat["node"] == beat["id"]


def test_every_job_of_a_killed_threads_worker_is_requeued(
    env: dict[str, str], threads_worker: Process, tmp_path: Path
) -> None:
    """Both jobs name the one process; once it is gone, a live worker puts each back."""
    api, url = start_api(env, tmp_path / "api.log")
    second: Process | None = None
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            ids = [submit(client, DATA / "jfk.flac")["id"] for _ in range(2)]
            deadline = time.monotonic() + 60
            while any(client.get(f"/v1/jobs/{i}").json()["status"] != "processing" for i in ids):
                assert time.monotonic() < deadline, "the two jobs never ran at once"
                time.sleep(0.02)
            os.kill(threads_worker.popen.pid, signal.SIGKILL)  # the worker is that one process
            threads_worker.popen.wait()
            second = start_worker(env, tmp_path / "second.log", name="second", pool="threads",
                                  concurrency=2)
            jobs = [wait_for_job(client, job_id) for job_id in ids]
    finally:
        for process in (second, api):
            if process is not None:
                process.stop()
    assert [(job["status"], job["attempts"]) for job in jobs] == [("completed", 2)] * 2
    assert second is not None
    assert second.output().count('"event": "requeued"') == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [("worker_pool", "gevent"), ("worker_pool", ""), ("worker_concurrency", 0),
     ("worker_concurrency", 65), ("worker_concurrency", "two")],
)
def test_bad_pool_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})


def test_a_worker_with_a_bad_pool_setting_does_not_start(env: dict[str, str]) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "cli.main", "worker"],
        env=env | {"VERBATIM_WORKER_POOL": "eventlet"}, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert started.returncode != 0
    assert "worker_pool" in started.stderr
    assert "'prefork' or 'threads'" in started.stderr
