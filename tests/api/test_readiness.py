"""`/readyz` follows Redis and the workers' heartbeats, on a private Redis, API and worker.

Heartbeats come every 0.5 s and count for 4 s here (slack for a loaded machine), so a worker
that is gone is noticed fast.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
import redis
from support import DATA, Process, pool_children, start_api, start_worker, submit, wait_for_job

from shared.localredis import LocalRedis, free_port
from shared.state.heartbeats import WORKERS_KEY, worker_key

TIMEOUT_SECONDS = 4.0
FAST_HEARTBEATS = {
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
}


@pytest.fixture(scope="module")
def env(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A Redis of its own (the session's has the session worker's heartbeats in it); the
    session's data directory, where the model is already assembled."""
    with LocalRedis(tmp_path_factory.mktemp("readiness-redis")) as server:
        yield service_env | FAST_HEARTBEATS | {"VERBATIM_REDIS_URL": server.url}


@pytest.fixture(scope="module")
def api(env: dict, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    process, url = start_api(env, tmp_path_factory.mktemp("readiness") / "api.log")
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client
    process.stop()


@pytest.fixture
def worker(env: dict, tmp_path: Path) -> Iterator[Process]:
    process = start_worker(env, tmp_path / "worker.log", name="readiness", wait_for_model=False)
    yield process
    process.stop()


def not_ready_message(response: httpx.Response) -> str:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    return str(error["message"])


def wait_for_status(api: httpx.Client, status: int, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while (response := api.get("/readyz")).status_code != status:
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz still answers {response.status_code}: {response.text}")
        time.sleep(0.1)
    return response


def test_not_ready_without_a_worker(api: httpx.Client) -> None:
    message = not_ready_message(api.get("/readyz"))
    assert "no worker with a loaded model" in message
    assert f"{TIMEOUT_SECONDS:.0f} s" in message


def test_ready_once_the_model_is_loaded_then_not_after_a_clean_stop(
    api: httpx.Client, worker: Process, env: dict
) -> None:
    body = wait_for_status(api, 200, within=120).json()
    assert "model loaded" in worker.output()  # the beat follows the load, never precedes it
    assert body["status"] == "ready"
    [beat] = body["workers"]
    assert (beat["model"], beat["device"], beat["compute_type"]) == ("base", "cpu", "int8")
    assert beat["jobs_done"] == 0
    assert beat["pid"] in pool_children(worker.popen.pid)
    wait_for_job(api, submit(api, DATA / "1089-134686-0001.flac")["id"])
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while api.get("/readyz").json()["workers"][0]["jobs_done"] != 1:
        assert time.monotonic() < deadline, "the next beats do not count the job"
        time.sleep(0.1)
    worker.stop()
    # The pool process withdraws its beat as it exits: no need to wait for it to expire
    # (an expired beat would leave its member in the set until the next beat prunes it).
    assert "no worker" in not_ready_message(api.get("/readyz"))
    with redis.Redis.from_url(env["VERBATIM_REDIS_URL"]) as client:
        assert client.zcard(WORKERS_KEY) == 0
        assert client.exists(worker_key(beat["id"])) == 0


def redis_now(client: redis.Redis) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1e6


def test_a_killed_worker_expires(env: dict, api: httpx.Client, worker: Process) -> None:
    wait_for_status(api, 200, within=120)
    children = pool_children(worker.popen.pid)
    os.kill(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait()
    try:
        with redis.Redis.from_url(env["VERBATIM_REDIS_URL"]) as client:
            # The beat it sent last, by Redis's clock (a loaded machine may have delayed it).
            # Its pool process may withdraw it on the way out, once it sees its parent gone;
            # otherwise nothing does, and it expires.
            beats = client.zrange(WORKERS_KEY, 0, -1, withscores=True)
            last_beat = max((score / 1000 for _, score in beats), default=None)
            # While the beat is young it is counted, unless it was withdrawn (which is final).
            if last_beat is not None and redis_now(client) - last_beat < TIMEOUT_SECONDS - 1:
                if api.get("/readyz").status_code != 200:
                    assert client.zcard(WORKERS_KEY) == 0, "a young beat was not counted"
            # The first 503 comes from a read sent no later than the first read sent after
            # the beat's expiry.
            while True:
                asked = redis_now(client)
                response = api.get("/readyz")
                if response.status_code == 503:
                    break
                assert last_beat is not None, "counted with no beat left"
                assert asked - last_beat < TIMEOUT_SECONDS, (
                    f"counted {asked - last_beat:.1f} s after its last beat")
                time.sleep(0.1)
            # A beat still in the set was not withdrawn: it was counted until it expired.
            if last_beat is not None and client.zcard(WORKERS_KEY):
                assert redis_now(client) - last_beat >= TIMEOUT_SECONDS
        assert "no worker" in not_ready_message(response)
        assert api.get("/readyz").status_code == 503
    finally:
        for pid in children:  # the kernel kills them with their parent; be sure
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_redis_down_is_not_ready(env: dict, tmp_path: Path) -> None:
    dead_redis = {"VERBATIM_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    process, url = start_api(env | dead_redis, tmp_path / "api.log")
    try:
        message = not_ready_message(httpx.get(f"{url}/readyz", timeout=10))
        assert "Redis is unreachable" in message
    finally:
        process.stop()
