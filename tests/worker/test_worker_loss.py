"""A whole worker killed mid-job (main process and pool together, as when a container is
OOM-killed or its host is lost): a live worker puts the job back on the queue long before the
broker's visibility timeout, and it completes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sse_client import Received, events
from support import (
    JOB_TIMEOUT_SECONDS,
    TINY_MODEL,
    Process,
    kill_whole_worker,
    start_api,
    start_worker,
    submit,
)

from shared.localredis import LocalRedis

FAST_HEARTBEATS = {
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "4",
}


@pytest.fixture
def env(service_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    with LocalRedis(tmp_path / "redis-data") as server:
        yield service_env | FAST_HEARTBEATS | TINY_MODEL | {"VERBATIM_REDIS_URL": server.url}


def job_when(http: httpx.Client, job_id: str, done: tuple[str, ...]) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while (job := http.get(f"/v1/jobs/{job_id}").json())["status"] not in done:
        assert time.monotonic() < deadline, f"job {job_id} never reached {done}: {job}"
        time.sleep(0.1)
    return job


def test_a_job_of_a_killed_worker_is_requeued_and_completes(
    env: dict[str, str], tmp_path: Path, long_recording: Path
) -> None:
    api, url = start_api(env, tmp_path / "api.log")
    first = start_worker(env, tmp_path / "first.log", name="first")
    second: Process | None = None
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            job_id = submit(http, long_recording)["id"]
            job_when(http, job_id, ("processing",))
            kill_whole_worker(first)
            second = start_worker(env, tmp_path / "second.log", name="second")
            job = job_when(http, job_id, ("completed", "failed"))
            assert (job["status"], job["attempts"]) == ("completed", 2), job
            assert "printing" in http.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()
        assert '"event": "requeued"' in second.output()
    finally:
        for process in (second, first, api):
            if process is not None:
                process.stop()


def test_events_of_a_redelivered_job_hold_its_last_attempt_once(
    env: dict[str, str], tmp_path: Path, long_recording: Path
) -> None:
    """A live listener is told `restart` and gets the new attempt's segments; the stream then
    holds no segment of the killed attempt, so its segments still make the transcript."""
    api, url = start_api(env, tmp_path / "api.log")
    first = start_worker(env, tmp_path / "first.log", name="first")
    second: Process | None = None
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            job_id = submit(http, long_recording)["id"]
            live: list[Received] = []
            for event in events(http, job_id):
                live.append(event)
                if event.name == "segment" and second is None:
                    kill_whole_worker(first)  # mid-job, one segment out
                    second = start_worker(env, tmp_path / "second.log", name="second")
            replay = list(events(http, job_id))
            transcript = http.get(f"/v1/jobs/{job_id}/transcript.json").json()
    finally:
        for process in (second, first, api):
            if process is not None:
                process.stop()
    names = [event.name for event in live]
    assert live[-1].name == "completed"
    assert [e.data for e in live if e.name == "restart"] == [{"attempt": 2}]
    after_restart = live[names.index("restart"):]
    text = "".join(e.data["text"] for e in after_restart if e.name == "segment").strip()
    assert text == transcript["text"]
    segments = [e for e in replay if e.name == "segment"]
    assert [e.data["id"] for e in segments] == list(range(len(transcript["segments"])))
    assert "".join(e.data["text"] for e in segments).strip() == transcript["text"]
    assert [e.name for e in replay].index("restart") < [e.name for e in replay].index("segment")
