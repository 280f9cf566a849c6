"""Reading server-sent events in tests, as a client would, with `httpx-sse`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

T = TypeVar("T")

# Longest wait for one event (a job of the long recording takes seconds, never minutes).
READ_TIMEOUT_SECONDS = 120


@dataclass
class Received:
    """One event as a client got it, and when (time.time(), seconds)."""

    id: str
    name: str
    data: dict[str, Any]
    at: float


def events(
    http: httpx.Client, job_id: str, last_event_id: str | None = None, path: str | None = None,
) -> Iterator[Received]:
    """The events of `GET /v1/jobs/{id}/events` as they arrive, until the server ends it."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    timeout = httpx.Timeout(30, read=READ_TIMEOUT_SECONDS)
    url = path or f"/v1/jobs/{job_id}/events"
    with connect_sse(http, "GET", url, headers=headers, timeout=timeout) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            if not sse.data:
                continue  # httpx-sse dispatches a heartbeat comment as an empty message
            yield Received(sse.id, sse.event, json.loads(sse.data), time.time())


def all_events(http: httpx.Client, job_id: str, last_event_id: str | None = None) -> list[Received]:
    return list(events(http, job_id, last_event_id))


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coroutine)` on a thread of its own: Playwright's sync API keeps an event
    loop running in the main thread for the rest of the session once a browser test ran."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
