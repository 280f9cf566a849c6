"""URLs are checked again when the I/O worker connects, not only at submission: here the API
allows 127.0.0.1 and the I/O worker allows nothing (Redis database 3 of their own)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from receivers import Receiver, media_server, webhook_receiver
from support import DATA, spawn, start_api, wait_for_job, wait_until

from cli.serve import io_worker_command
from shared.config import Settings
from shared.localredis import free_port
from shared.outbound import REFUSED
from shared.schemas import JobOptions, Transcript
from shared.state.jobs import JobStore, new_job_id
from shared.state.webhooks import Events


@pytest.fixture(scope="module")
def stack(
    service_env: dict[str, str], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(API URL, Redis URL): the API allows 127.0.0.1, its I/O worker nothing."""
    logs = tmp_path_factory.mktemp("recheck")
    url = redis_url.rsplit("/", 1)[0] + "/3"
    env = service_env | {"VERBATIM_REDIS_URL": url}
    io = spawn(io_worker_command(2), env | {"VERBATIM_FETCH_ALLOW": "",
                                             "VERBATIM_IO_METRICS_PORT": str(free_port())},
               logs / "io.log")
    wait_until(lambda: " ready." in io.output(), "I/O worker start", io)
    api, api_url = start_api(env, logs / "api.log")
    yield api_url, url
    api.stop()
    io.stop()


def test_a_media_url_is_refused_when_fetched(stack: tuple[str, str]) -> None:
    api_url, _ = stack
    with media_server({"lj.flac": DATA / "LJ001-0001.flac"}) as base, \
            httpx.Client(base_url=api_url, timeout=30) as http:
        created = http.post("/v1/jobs", json={"url": f"{base}/lj.flac"})
        assert created.status_code == 202  # the API allows 127.0.0.1
        job = wait_for_job(http, created.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "url_forbidden"


def test_a_webhook_is_refused_when_delivered(stack: tuple[str, str]) -> None:
    redis_url = stack[1]
    settings = Settings(redis_url=redis_url)
    store = JobStore.from_url(redis_url)
    with webhook_receiver(Receiver()) as receiver:
        job_id = new_job_id()
        store.create(job_id, "a.wav", JobOptions(), 1.0, Path("/gone"),
                     extra={"webhook_url": receiver.url})
        store.complete(job_id, Transcript(language="en", duration=1.0, text="", segments=[]),
                       ttl=600)
        assert Events(store, settings).announce(job_id)
        deadline = time.monotonic() + 30
        while not (store.get(job_id).webhook or {}) or not store.get(job_id).webhook.attempts:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2)  # no retry follows a refusal
        assert receiver.received == []
    state = store.get(job_id).webhook
    assert state.attempts == 1
    assert state.delivered_at is None
    assert REFUSED in state.last_error
