"""The I/O worker under loss and load (issue 26), on a service of its own: real Redis, API
(keys required), transcription worker, I/O workers, and HTTP servers on loopback.

Heartbeats every 0.5 s count for 3 s; each key downloads at most 2 media URLs at once; webhook
retries come about 2 s, then 4 s apart; recordings past 30 s are spread over windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from receivers import Receiver, media_server, webhook_receiver
from standardwebhooks.webhooks import Webhook
from support import (
    DATA,
    TINY_MODEL,
    Process,
    keyed_client,
    kill_whole_worker,
    make_key,
    spawn,
    start_auth_api,
    start_worker,
    submit,
    wait_for_job,
    wait_until,
)

from cli.serve import io_worker_command
from shared.localredis import LocalRedis
from shared.state.jobs import JobStore
from shared.state.keys import KeyStore

SHORT = DATA / "LJ001-0001.flac"
ENV = {
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "3",
    "VERBATIM_FETCHES_PER_KEY": "2",
    "VERBATIM_WEBHOOK_ATTEMPTS": "3",
    "VERBATIM_WEBHOOK_WINDOW_SECONDS": "6",
    "VERBATIM_IO_METRICS_PORT": "0",
    "VERBATIM_SPLIT_SECONDS": "30",
    "VERBATIM_WINDOW_SECONDS": "30",
    "VERBATIM_WINDOW_SEARCH_SECONDS": "10",
}
# Long enough for a job of another key to be fetched and transcribed meanwhile.
SLOW_SECONDS = 40


@dataclass
class Stack:
    env: dict[str, str]
    url: str
    redis: redis.Redis
    logs: Path
    io: list[Process]

    def start_io(self, threads: int = 3) -> Process:
        process = spawn(io_worker_command(threads), self.env,
                        self.logs / f"io-{len(self.io) + 1}.log")
        self.io.append(process)
        wait_until(lambda: " ready." in process.output(), "I/O worker start", process)
        return process

    def key(self, name: str) -> tuple[httpx.Client, str]:
        """A client with a new key of its own, and that key's webhook secret."""
        key_id, token = make_key(self.env["VERBATIM_REDIS_URL"], name)
        return keyed_client(self.url, token), KeyStore(self.redis).webhook_secret(key_id)


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("io-worker")
    with LocalRedis(logs / "redis") as server:
        env = service_env | ENV | TINY_MODEL | {"VERBATIM_REDIS_URL": server.url,
                                                "VERBATIM_DATA_DIR": str(logs / "data")}
        api, url = start_auth_api(env, logs / "api.log")
        worker = start_worker(env, logs / "worker.log", name="io-stack")
        client = redis.Redis.from_url(server.url)
        stack = Stack(env, url, client, logs, [])
        try:
            yield stack
        finally:
            for process in (*stack.io, worker, api):
                process.stop()
            client.close()


@pytest.fixture
def io_workers(stack: Stack) -> Iterator[Stack]:
    """The stack; the I/O workers a test starts are stopped after it (killed after 3 s: a warm
    stop would wait for the 40 s downloads some tests leave running, of jobs they deleted)."""
    yield stack
    while stack.io:
        stack.io.pop().stop(timeout=3)


REQUESTED: list[str] = []  # the media server's requests, as they begin


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with media_server({"lj.flac": SHORT}, requested=REQUESTED) as base:
        yield base


def wait_for(check: Callable[[], object], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ended(http: httpx.Client, job_id: str, timeout: float = 90) -> dict:
    """The job once it ends, or as it is when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def requests_for(path: str) -> int:
    """How many downloads of `path` the media server has begun."""
    return REQUESTED.count(path)


def text(http: httpx.Client, job_id: str) -> str:
    return http.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()


def test_a_fetch_of_a_killed_io_worker_is_made_again(
    io_workers: Stack, media: str
) -> None:
    stack = io_workers
    first = stack.start_io()
    http, _ = stack.key("refetch")
    with http:
        path = "/trickle/6/lj.flac?refetch"
        created = http.post("/v1/jobs", data={"url": f"{media}{path}"}).json()
        job_key = JobStore.job_key(created["id"])
        wait_for(lambda: requests_for(path), "the download to begin")
        time.sleep(1.5)  # into the download
        kill_whole_worker(first)
        stack.start_io()
        job = ended(http, created["id"])
        assert job["status"] == "completed", job
        assert "printing" in text(http, created["id"])
    assert int(stack.redis.hget(job_key, "fetch_attempts") or 0) == 2


def test_a_fetch_begun_too_often_fails_and_announces_it_once(
    io_workers: Stack, media: str
) -> None:
    stack = io_workers
    stack.start_io()
    http, secret = stack.key("too-often")
    with http, webhook_receiver(Receiver()) as receiver:
        # As if three I/O workers had died fetching it: the next fetch is the fourth.
        path = "/trickle/30/lj.flac?too-often"
        created = http.post("/v1/jobs", data={"url": f"{media}{path}",
                                              "webhook_url": receiver.url}).json()
        job_key = JobStore.job_key(created["id"])
        wait_for(lambda: requests_for(path), "the download to begin")
        stack.redis.hset(job_key, "fetch_attempts", 3)
        kill_whole_worker(stack.io[0])
        stack.start_io()
        job = ended(http, created["id"])
        (delivery,) = receiver.wait_for(1)
        time.sleep(2)  # no second event
        assert len(receiver.received) == 1
    assert job["status"] == "failed"
    assert job["error"]["code"] == "too_many_attempts", job
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.failed"
    assert event["data"]["error"]["code"] == "too_many_attempts"


def test_a_webhook_retry_due_on_a_killed_io_worker_is_made_by_the_next(
    io_workers: Stack,
) -> None:
    stack = io_workers
    first = stack.start_io()
    http, secret = stack.key("retry")
    with http, webhook_receiver(Receiver(statuses=[500, 200])) as receiver:
        created = submit(http, SHORT, webhook_url=receiver.url)
        receiver.wait_for(1, timeout=90)
        wait_for(lambda: (http.get(f"/v1/jobs/{created['id']}").json().get("webhook") or {})
                 .get("last_status") == 500, "the failed attempt to be recorded")
        kill_whole_worker(first)  # the retry is due in about 2 s
        stack.start_io()
        deliveries = receiver.wait_for(2, timeout=60)
        time.sleep(1)  # nothing more after the 200
        assert len(receiver.received) == 2
        state = http.get(f"/v1/jobs/{created['id']}").json()["webhook"]
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    for delivery in deliveries:
        assert Webhook(secret).verify(delivery.body, delivery.headers)["data"]["id"] == (
            created["id"])
    assert state["attempts"] == 2
    assert state["delivered_at"] is not None


def test_a_key_with_many_slow_urls_leaves_room_for_another_keys_url(
    io_workers: Stack, media: str
) -> None:
    stack = io_workers
    stack.start_io(threads=3)
    hog, _ = stack.key("hog")
    other, _ = stack.key("other")
    with hog, other:
        path = f"/trickle/{SLOW_SECONDS}/lj.flac?hog"
        slow = [hog.post("/v1/jobs", data={"url": f"{media}{path}"}).json()["id"]
                for _ in range(4)]
        wait_for(lambda: requests_for(path) >= 2, "the first key's downloads to begin")
        created = other.post("/v1/jobs", data={"url": f"{media}/lj.flac"}).json()
        job = ended(other, created["id"])
        assert job["status"] == "completed", job
        assert "printing" in text(other, created["id"])
        # Every slow URL was still being fetched, or waiting its key's turn, meanwhile.
        assert [hog.get(f"/v1/jobs/{j}").json()["status"] for j in slow] == ["fetching"] * 4
        for job_id in slow:
            hog.delete(f"/v1/jobs/{job_id}")


def test_a_webhook_never_waits_behind_fetches(io_workers: Stack, media: str) -> None:
    stack = io_workers
    stack.start_io(threads=2)
    http, secret = stack.key("busy")
    with http, webhook_receiver(Receiver()) as receiver:
        path = f"/trickle/{SLOW_SECONDS}/lj.flac?busy"
        slow = [http.post("/v1/jobs", data={"url": f"{media}{path}"}).json()["id"]
                for _ in range(2)]
        wait_for(lambda: requests_for(path) == 2, "both fetch threads to be busy")
        created = submit(http, SHORT, webhook_url=receiver.url)
        assert wait_for_job(http, created["id"])["status"] == "completed"
        (delivery,) = receiver.wait_for(1, timeout=20)
        assert [http.get(f"/v1/jobs/{j}").json()["status"] for j in slow] == ["fetching"] * 2
        for job_id in slow:
            http.delete(f"/v1/jobs/{job_id}")
    assert Webhook(secret).verify(delivery.body, delivery.headers)["data"]["id"] == created["id"]


def test_a_spread_job_announces_its_end_once(
    io_workers: Stack, long_recording: Path
) -> None:
    stack = io_workers
    stack.start_io()
    http, secret = stack.key("spread")
    with http, webhook_receiver(Receiver()) as receiver:
        created = submit(http, long_recording, webhook_url=receiver.url)
        job = wait_for_job(http, created["id"])
        (delivery,) = receiver.wait_for(1, timeout=30)
        time.sleep(2)  # no second event
        assert len(receiver.received) == 1
    assert job["status"] == "completed", job
    assert any("job spread over windows" in line for line in (stack.logs / "worker.log")
               .read_text().splitlines() if job["id"] in line)
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.completed"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["status"] == "completed"
