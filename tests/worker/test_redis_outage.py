"""Redis restarting while a job runs: the job is not lost, it completes once Redis is back, also
when the worker gave up waiting for Redis before it came back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import (
    JOB_TIMEOUT_SECONDS,
    Process,
    start_api,
    start_worker,
    submit,
    wait_until,
)

from shared.localredis import LocalRedis

OUTAGE_SECONDS = 5
# The first download starts the API's render processes (`api/rendering.py`): seconds of imports,
# which a busy machine stretches well past 10 s.
HTTP_TIMEOUT_SECONDS = 60
# A worker that waits this long for Redis (then an outage until it gives up).
SHORT_RETRY_SECONDS = 1
# After Redis is back: the job given back is delivered again at once and decoded (about 36 s of
# audio), well within this.
RERUN_SECONDS = 60
# The recording (about 36 s) spread over windows of at most 30 s: two.
SPREAD = {"VERBATIM_SPLIT_SECONDS": "30", "VERBATIM_WINDOW_SECONDS": "30",
          "VERBATIM_WINDOW_SEARCH_SECONDS": "10"}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(tmp_path / "redis-data").start()
    yield server
    server.stop()


def job_when(http: httpx.Client, job_id: str, done: tuple[str, ...],
             timeout: float = JOB_TIMEOUT_SECONDS) -> dict:
    """Poll through the outage (the API answers 503 meanwhile) until the status is in `done`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = http.get(f"/v1/jobs/{job_id}")
        if response.status_code == 200 and (job := response.json())["status"] in done:
            return job
        time.sleep(0.1)
    pytest.fail(f"job {job_id} never reached {done}")


def test_a_job_survives_redis_restarting_under_it(
    redis_server: LocalRedis, service_env: dict[str, str], tmp_path: Path,
    long_recording: Path,
) -> None:
    env = service_env | {"VERBATIM_REDIS_URL": redis_server.url}
    api, url = start_api(env, tmp_path / "api.log")
    worker: Process = start_worker(env, tmp_path / "worker.log", name="outage")
    try:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_SECONDS) as http:
            job_id = submit(http, long_recording)["id"]
            job_when(http, job_id, ("processing",))
            redis_server.stop()
            time.sleep(OUTAGE_SECONDS)
            redis_server.start()  # same port and data: the append-only file brings jobs back
            job = job_when(http, job_id, ("completed", "failed"))
            assert job["status"] == "completed", job
            text = http.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()
        assert "printing" in text
    finally:
        worker.stop()
        api.stop()


def runs_again_after_giving_up(
    redis_server: LocalRedis, env: dict[str, str], tmp_path: Path, recording: Path,
    decoding: Callable[[httpx.Client, str, Process], bool],
) -> None:
    """A job on a worker that waits `SHORT_RETRY_SECONDS` for Redis: Redis stopped once
    `decoding` says the job is being decoded, until the worker gives up on it, then started
    again; the job completes with its words within `RERUN_SECONDS`."""
    env = env | {"VERBATIM_REDIS_URL": redis_server.url,
                 "VERBATIM_REDIS_RETRY_SECONDS": str(SHORT_RETRY_SECONDS)}
    api, url = start_api(env, tmp_path / "api.log")
    worker: Process = start_worker(env, tmp_path / "worker.log", name="gave-up")
    try:
        with httpx.Client(base_url=url, timeout=HTTP_TIMEOUT_SECONDS) as http:
            job_id = submit(http, recording)["id"]
            wait_until(lambda: decoding(http, job_id, worker), "the job's decoding", worker)
            redis_server.stop()
            # Away until the task gives up on it, however long its decoding takes on this
            # machine: a fixed outage can end before the task next needs Redis.
            wait_until(lambda: "Redis unreachable" in worker.output(),
                       "the task giving up on Redis", worker, JOB_TIMEOUT_SECONDS)
            redis_server.start()
            back = time.monotonic()
            job = job_when(http, job_id, ("completed", "failed"), RERUN_SECONDS)
            assert job["status"] == "completed", job
            assert time.monotonic() - back < RERUN_SECONDS
            text = http.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()
        assert "printing" in text
    finally:
        worker.stop()
        api.stop()


def test_a_job_whose_worker_gave_up_on_redis_runs_again_once_redis_is_back(
    redis_server: LocalRedis, service_env: dict[str, str], tmp_path: Path,
    long_recording: Path,
) -> None:
    """The task stops waiting for Redis (`redis_retry_seconds`) while it is away; its message,
    given back through the broker connection it came by, would be lost with that connection
    and the job left `processing` until the visibility timeout. It runs again instead."""
    # Decoding, so that it reports its progress (or completes) during the outage.
    runs_again_after_giving_up(
        redis_server, service_env, tmp_path, long_recording,
        lambda http, job_id, _: http.get(f"/v1/jobs/{job_id}").json()["progress"] > 0)


def test_a_window_whose_worker_gave_up_on_redis_runs_again_once_redis_is_back(
    redis_server: LocalRedis, service_env: dict[str, str], tmp_path: Path,
    long_recording: Path,
) -> None:
    """As above, for a window of a recording spread over the workers (`worker/spread.py`)."""
    runs_again_after_giving_up(
        redis_server, service_env | SPREAD, tmp_path, long_recording,
        lambda _, __, worker: "window started" in worker.output())
