"""Live sessions against tenants that misbehave (issue 26), with keys required: the real API,
Redis and live worker."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from live_client import (
    events_until_end,
    open_session,
    start_message,
    started_session,
    stop,
    ws_url,
)
from support import Process, make_key, start_auth_api
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from shared.schemas import JobStatus
from shared.state.jobs import JobStore
from shared.state.keys import KeyStore

BIG = 1024 * 1024  # far over the 64 KiB frame limit of the tests' API, far under uvicorn's 16 MiB


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _refusal(url: str, frame: str | bytes) -> str:
    """How the API answered one unauthenticated client's frame: `close:<code>` or
    `error:<code>`."""
    try:
        with connect(url, open_timeout=10, close_timeout=10, max_size=None) as ws:
            try:
                ws.send(frame)
                event = json.loads(ws.recv(timeout=30))
            except ConnectionClosed as exc:
                return f"close:{exc.rcvd.code if exc.rcvd else 'none'}"
            assert event["type"] == "error", event
            return f"error:{event['code']}"
    except (InvalidHandshake, OSError) as exc:
        return f"refused:{type(exc).__name__}"


def _job_status(client: redis.Redis, job_id: str, timeout: float = 60) -> JobStatus | None:
    """The job's status once it has ended (or as it is after `timeout`)."""
    deadline, job = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        job = JobStore(client).get(job_id)
        if job is not None and job.status in (JobStatus.completed, JobStatus.failed):
            break
        time.sleep(0.2)
    return job.status if job else None


def _abusive_frames() -> list[tuple[str, str | bytes, set[str]]]:
    """(URL suffix, frame, the refusals that are right) for 100 frames."""
    padded = json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                         "language": "en" + " " * BIG})
    over_start = start_message(language="en", colour="x" * 8000)  # 8 KB: over the 4 KB start
    too_big = {"close:1009"}
    kinds: list[tuple[str, str | bytes, set[str]]] = [
        ("", padded, too_big),  # no key, a huge start
        ("?access_token=vb_" + "x" * 40, padded, too_big),  # a wrong key, a huge start
        ("", "{" * BIG, too_big),  # huge and not JSON
        ("", b"\x00" * BIG, too_big),  # huge audio before start
        ("", over_start, {"error:frame_too_large"}),  # under the frame limit, over the start's
        ("?access_token=vb_" + "y" * 40, "{" * 3000, {"error:unauthorized"}),  # key first
    ]
    return [kinds[i % len(kinds)] for i in range(100)]


def test_unauthenticated_floods_are_refused_before_parsing_and_the_api_stays_up(
    auth_api: tuple[Process, str],
) -> None:
    process, url = auth_api
    base = ws_url(url)
    with httpx.Client(base_url=url, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        before = _rss_mib(process.popen.pid)
        answers: list[int] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                answers.append(http.get("/healthz").status_code)
                time.sleep(0.05)

        poller = threading.Thread(target=poll)
        poller.start()
        frames = _abusive_frames()
        try:
            with ThreadPoolExecutor(8) as pool:
                refusals = list(pool.map(lambda item: _refusal(base + item[0], item[1]), frames))
        finally:
            done.set()
            poller.join()
        after = _rss_mib(process.popen.pid)
    wrong = [(suffix[:20], refusal) for (suffix, _, right), refusal in zip(
        frames, refusals, strict=True) if refusal not in right]
    assert not wrong, wrong
    assert answers
    assert set(answers) == {200}
    # 100 MB were sent; the API held none of it (growth is noise, not frames).
    assert after - before < 40, (before, after)


def test_a_key_holds_at_most_its_live_sessions_whatever_its_active_job_limit(
    service_env: dict[str, str], live_worker: Process, redis_url: str, tmp_path: Path,
) -> None:
    env = service_env | {"VERBATIM_LIVE_MAX_SESSIONS_PER_KEY": "1"}
    api, url = start_auth_api(env, tmp_path / "api.log")
    try:
        _, token = make_key(redis_url, "live-many", max_active_jobs=10)
        _, other = make_key(redis_url, "live-other-key")
        with started_session(ws_url(url, token), timeout=180) as (ws, _):
            with open_session(ws_url(url, token)) as (_, second):
                assert second["type"] == "error"
                assert second["code"] == "too_many_live_sessions"
            # Another key is not refused for this key's sessions: it finds the one live
            # worker busy, as the pool's own limit says.
            with open_session(ws_url(url, other)) as (_, third):
                assert third["code"] == "no_live_worker"
            stop(ws)
            assert events_until_end(ws)[-1][1]["type"] == "done"
        # Ended, the session no longer counts.
        with started_session(ws_url(url, token), timeout=180) as (ws, _):
            stop(ws)
            assert events_until_end(ws)[-1][1]["type"] == "done"
    finally:
        api.stop()


def test_a_revoked_keys_live_session_ends_within_seconds(
    auth_api: tuple[Process, str], live_worker: Process, redis_url: str,
    redis_client: redis.Redis,
) -> None:
    url = auth_api[1]
    key_id, token = make_key(redis_url, "live-revoked")
    with started_session(ws_url(url, token), timeout=180) as (ws, started):
        ws.send(b"\x00\x00" * 16000)
        KeyStore(redis_client).revoke(key_id)
        revoked = time.monotonic()
        end = events_until_end(ws, timeout=30)[-1]
        assert end[1]["type"] == "error"
        assert end[1]["code"] == "unauthorized"
        assert end[0] - revoked < 10  # KEY_CHECK_SECONDS is 2
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    # The session's job ends too (its key can no longer read it: the store says).
    assert _job_status(redis_client, started["job_id"]) == JobStatus.completed
