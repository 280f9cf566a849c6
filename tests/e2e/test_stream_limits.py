"""Event streams per API key (issue 26, items 9 and 13): one key's open streams never make
another key's stream refused, the count holds across replicas (in Redis) and gives a slot back
however a stream ends, and a revoked key's open stream ends within seconds. Real API processes
with keys required on the session's Redis; the jobs are queued records no worker takes, so
their streams stay open."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from support import Process, make_key, revoke_key, start_api

from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id

PER_KEY = 2
WAIT_SECONDS = 60  # the bound of every wait below
# A dead replica's streams hold their slots for its send timeout and three key checks: 4.5 s.
DOOMED_SEND_TIMEOUT_SECONDS = 3


@pytest.fixture(scope="module")
def replicas(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[list[tuple[Process, str]]]:
    """Two API replicas with keys required, each serving at most 3 streams, a key 2."""
    env = service_env | {"VERBATIM_AUTH": "required", "VERBATIM_EVENTS_MAX_LISTENERS": "3",
                         "VERBATIM_EVENTS_MAX_STREAMS_PER_KEY": str(PER_KEY),
                         "VERBATIM_EVENTS_KEY_CHECK_SECONDS": "0.5",
                         "VERBATIM_EVENTS_PING_SECONDS": "1"}
    logs = tmp_path_factory.mktemp("stream-limits")
    started = [start_api(env, logs / f"api-{n}.log") for n in (1, 2)]
    yield started
    for process, _ in started:
        process.stop()


def idle_job(redis_url: str, owner: str) -> str:
    """A queued job of `owner` that nothing runs: its stream stays open."""
    job_id = new_job_id()
    JobStore.from_url(redis_url).create(job_id, "idle.flac", JobOptions(), 1.0,
                                        Path("/nonexistent"), owner=owner)
    return job_id


def open_stream(stack: ExitStack, url: str, token: str, job_id: str) -> httpx.Response:
    http = stack.enter_context(httpx.Client(base_url=url, timeout=10))
    return stack.enter_context(http.stream(
        "GET", f"/v1/jobs/{job_id}/events", params={"access_token": token}))


def status_of(url: str, token: str, job_id: str) -> tuple[int, str | None]:
    with ExitStack() as stack:
        response = open_stream(stack, url, token, job_id)
        if response.status_code == 200:
            return 200, None
        return response.status_code, json.loads(response.read())["error"]["code"]


def admitted_within(url: str, token: str, job_id: str) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if status_of(url, token, job_id)[0] == 200:
            return True
        time.sleep(0.5)
    return False


def test_one_keys_streams_never_refuse_another_keys(
    replicas: list[tuple[Process, str]], redis_url: str
) -> None:
    (_, first), (_, second) = replicas
    greedy_id, greedy = make_key(redis_url, "greedy")
    other_id, other = make_key(redis_url, "other")
    greedy_job, other_job = idle_job(redis_url, greedy_id), idle_job(redis_url, other_id)
    with ExitStack() as stack:
        opened = [open_stream(stack, first, greedy, greedy_job) for _ in range(PER_KEY)]
        assert [r.status_code for r in opened] == [200] * PER_KEY
        # Its next one is refused on either replica: the count is the key's, in Redis.
        assert status_of(first, greedy, greedy_job) == (429, "too_many_streams")
        assert status_of(second, greedy, greedy_job) == (429, "too_many_streams")
        # The other key still has room on the replica the first one fills most.
        assert status_of(first, other, other_job) == (200, None)
    # Closed, its streams give their slots back.
    assert admitted_within(second, greedy, greedy_job)


def test_a_dead_replicas_streams_stop_counting(
    replicas: list[tuple[Process, str]], redis_url: str, service_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = service_env | {"VERBATIM_AUTH": "required",
                         "VERBATIM_EVENTS_MAX_STREAMS_PER_KEY": str(PER_KEY),
                         "VERBATIM_EVENTS_KEY_CHECK_SECONDS": "0.5",
                         "VERBATIM_EVENTS_SEND_TIMEOUT_SECONDS": str(DOOMED_SEND_TIMEOUT_SECONDS)}
    doomed, doomed_url = start_api(env, tmp_path_factory.mktemp("doomed") / "api.log")
    key_id, token = make_key(redis_url, "crashed")
    job_id = idle_job(redis_url, key_id)
    try:
        with ExitStack() as stack:
            for _ in range(PER_KEY):
                assert open_stream(stack, doomed_url, token, job_id).status_code == 200
            assert status_of(replicas[0][1], token, job_id) == (429, "too_many_streams")
            doomed.popen.send_signal(signal.SIGKILL)  # no stream of it ends cleanly
            doomed.popen.wait(10)
    finally:
        doomed.stop()
    assert admitted_within(replicas[0][1], token, job_id), "the dead replica's slots lapse"


def test_a_revoked_keys_open_stream_ends_with_unauthorized(
    replicas: list[tuple[Process, str]], redis_url: str
) -> None:
    url = replicas[1][1]
    key_id, token = make_key(redis_url, "revoked")
    job_id = idle_job(redis_url, key_id)
    timeout = httpx.Timeout(10, read=WAIT_SECONDS)
    with httpx.Client(base_url=url, timeout=timeout) as http, connect_sse(
            http, "GET", f"/v1/jobs/{job_id}/events", params={"access_token": token}) as source:
        assert source.response.status_code == 200
        revoke_key(redis_url, key_id)
        # Read on a thread, so that a stream that never ends fails the test (its heartbeats
        # would keep any read timeout from expiring).
        with ThreadPoolExecutor(max_workers=1) as reader:
            reading = reader.submit(
                lambda: [(sse.event, sse.data) for sse in source.iter_sse() if sse.data])
            try:
                received = reading.result(timeout=WAIT_SECONDS)
            except TimeoutError:
                source.response.close()  # ends the reader's wait
                pytest.fail("the revoked key's stream did not end")
    name, data = received[-1]
    assert name == "error"
    assert json.loads(data)["error"]["code"] == "unauthorized"
