"""Many idle event streams on one API process: no thread each, heartbeats, a clean end.

A separate API process on the session's Redis, with one-second heartbeats and job checks; its
job is created in the store and never queued, so its streams stay idle until it is deleted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse
from sse_client import run_async
from support import DATA, Process, start_api

from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id

LISTENERS = 200
POLLS = 20
# Far above a status poll's time on an idle process, far below a thread pool's starvation.
POLL_TIMEOUT_SECONDS = 5
SETTLE_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def events_api(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = service_env | {"VERBATIM_EVENTS_PING_SECONDS": "1",
                         "VERBATIM_EVENTS_CHECK_SECONDS": "1"}
    process: Process
    process, url = start_api(env, tmp_path_factory.mktemp("logs") / "events-api.log")
    yield url
    process.stop()


@pytest.fixture
def idle_job(redis_url: str, tmp_path: Path) -> Iterator[tuple[JobStore, str]]:
    """A job that exists but will never run (it is not on the queue)."""
    store = JobStore.from_url(redis_url)
    job_id = new_job_id()
    # Its upload is a copy: deleting the job removes it.
    upload = tmp_path / "idle.flac"
    upload.write_bytes(DATA.joinpath("jfk.flac").read_bytes())
    store.create(job_id, "idle.flac", JobOptions(), 11.0, upload)
    yield store, job_id
    store.delete(job_id)
    store.redis.close()


async def listen(http: httpx.AsyncClient, job_id: str, opened: asyncio.Event,
                 counter: list[int]) -> tuple[int, list[str]]:
    """One listener: how many heartbeats it saw, and the names of its events."""
    names: list[str] = []
    pings = 0
    async with aconnect_sse(http, "GET", f"/v1/jobs/{job_id}/events") as source:
        assert source.response.status_code == 200
        counter[0] += 1
        if counter[0] == LISTENERS:
            opened.set()
        async for line in source.response.aiter_lines():  # comments are not events: read lines
            if line.startswith(":"):
                pings += 1
            elif line.startswith("event:"):
                names.append(line.split(":", 1)[1].strip())
    return pings, names


async def poll_status(url: str, job_id: str) -> list[float]:
    """Status polls on a connection of their own: how long each took."""
    took = []
    async with httpx.AsyncClient(base_url=url, timeout=POLL_TIMEOUT_SECONDS) as http:
        for _ in range(POLLS):
            started = time.perf_counter()
            response = await http.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200
            assert response.json()["status"] == "queued"
            took.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return took


async def scenario(url: str, store: JobStore, job_id: str) -> tuple[list, list[float]]:
    limits = httpx.Limits(max_connections=LISTENERS + 10)
    timeout = httpx.Timeout(SETTLE_TIMEOUT_SECONDS)
    opened, counter = asyncio.Event(), [0]
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as http:
        listeners = [asyncio.create_task(listen(http, job_id, opened, counter))
                     for _ in range(LISTENERS)]
        await asyncio.wait_for(opened.wait(), SETTLE_TIMEOUT_SECONDS)
        await asyncio.sleep(2)  # every stream idle, heartbeats flowing
        took = await poll_status(url, job_id)
        # Deleted behind the API's back (no `deleted` event): the streams' job check ends them.
        store.delete(job_id)
        ended = await asyncio.wait_for(asyncio.gather(*listeners), SETTLE_TIMEOUT_SECONDS)
    return ended, took


def test_idle_listeners_leave_status_polls_answering(
    events_api: str, idle_job: tuple[JobStore, str]
) -> None:
    store, job_id = idle_job
    ended, took = run_async(scenario(events_api, store, job_id))
    assert len(took) == POLLS
    assert max(took) < POLL_TIMEOUT_SECONDS
    assert all(names == ["deleted"] for _, names in ended), ended[:3]
    assert all(pings >= 1 for pings, _ in ended), "idle streams must carry heartbeats"


def test_listeners_past_the_limit_are_refused(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
    idle_job: tuple[JobStore, str],
) -> None:
    env = service_env | {"VERBATIM_EVENTS_MAX_LISTENERS": "2"}
    process, url = start_api(env, tmp_path_factory.mktemp("logs") / "limited-api.log")
    try:
        path = f"/v1/jobs/{idle_job[1]}/events"
        with httpx.Client(base_url=url, timeout=10) as first, \
                httpx.Client(base_url=url, timeout=10) as second:
            with first.stream("GET", path) as one, second.stream("GET", path) as two:
                assert (one.status_code, two.status_code) == (200, 200)
                refused = httpx.get(url + path, timeout=10)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert admitted_again(url + path), "closed streams must give their places back"
    finally:
        process.stop()


def admitted_again(url: str) -> bool:
    """Whether a stream is admitted within a few seconds (the server notices a client that
    went away on its next read or heartbeat)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with httpx.stream("GET", url, timeout=10) as response:
            if response.status_code == 200:
                return True
        time.sleep(0.2)
    return False
