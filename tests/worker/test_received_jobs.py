"""A worker that dies holding a job it received but had not started (it may hold more than it
runs: after a Redis restart, or with a prefetch multiplier above 1): a live worker puts that
job back on the queue within the heartbeat timeout, and jobs that were already held go before
jobs that never were."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
from kombu.transport.redis import Channel
from support import DATA, TINY_MODEL, Process, start_api, start_worker, submit, wait_for_job
from test_worker_loss import FAST_HEARTBEATS, job_when, kill_whole_worker

from shared.localredis import LocalRedis
from shared.priorities import REQUEUED_PRIORITY
from shared.queue import queue_for
from shared.state.jobs import RECEIVED_KEY


@pytest.fixture
def env(service_env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    with LocalRedis(tmp_path / "redis-data") as server:
        yield service_env | FAST_HEARTBEATS | TINY_MODEL | {"VERBATIM_REDIS_URL": server.url}


def wait_for(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def requeued(client: redis.Redis) -> list[str]:
    """Job ids waiting in the queue's most urgent list (Celery's message protocol 2: the body
    is the base64 JSON of [args, kwargs, embed])."""
    queue = queue_for(TINY_MODEL["VERBATIM_MODEL"])
    name = f"{queue}{Channel.sep}{REQUEUED_PRIORITY}" if REQUEUED_PRIORITY else queue
    messages = [json.loads(raw) for raw in client.lrange(name, 0, -1)]
    return sorted(json.loads(base64.b64decode(m["body"]))[0][0] for m in messages)


def test_held_jobs_of_a_dead_worker_are_requeued_ahead_of_new_ones(
    env: dict[str, str], tmp_path: Path, long_recording: Path
) -> None:
    client = redis.Redis.from_url(env["VERBATIM_REDIS_URL"])
    api, url = start_api(env, tmp_path / "api.log")
    # A worker that takes no jobs (its queue is another one) but beats, and so reaps.
    reaper = start_worker(env, tmp_path / "reaper.log", name="reaper", options=("-Q", "none"))
    holder: Process | None = None
    runner: Process | None = None
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            holder = start_worker(env, tmp_path / "holder.log", name="holder",
                                  options=("--prefetch-multiplier", "2"))
            running = submit(http, long_recording)["id"]
            held = submit(http, DATA / "jfk.flac")["id"]
            job_when(http, running, ("processing",))
            wait_for(lambda: client.hexists(RECEIVED_KEY, held), "the second job's mark")
            assert http.get(f"/v1/jobs/{held}").json()["status"] == "queued"
            waiting = submit(http, DATA / "jfk.flac")["id"]  # never held by anyone
            killed = time.monotonic()
            kill_whole_worker(holder)
            wait_for(lambda: requeued(client) == sorted([running, held]),
                     "both held jobs back on the queue, most urgent first", timeout=30)
            assert time.monotonic() - killed < 4 + 5  # the heartbeat timeout, and a beat
            runner = start_worker(env, tmp_path / "runner.log", name="runner")
            jobs = {job_id: wait_for_job(http, job_id) for job_id in (running, held, waiting)}
        assert all(job["status"] == "completed" for job in jobs.values()), jobs
        assert (jobs[running]["attempts"], jobs[held]["attempts"]) == (2, 1)
        started = {k: datetime.fromisoformat(j["started_at"]) for k, j in jobs.items()}
        assert max(started[running], started[held]) < started[waiting]
        assert reaper.output().count('"event": "requeued"') == 2
    finally:
        for process in (runner, holder, reaper, api):
            if process is not None:
                process.stop()
        client.close()
