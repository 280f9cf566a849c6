"""Live sessions whose worker dies, whose client floods or leaves (issue 26), on a stack of
their own (its live worker is killed and restarted here): Redis, API with keys required, a
transcription worker (whose heartbeat runs the reaper), the I/O worker and a live worker."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from live_client import (
    Streamer,
    events_until_end,
    first_finals,
    pcm16,
    plain,
    received_so_far,
    started_session,
    stop,
    ws_url,
)
from receivers import Receiver, webhook_receiver
from support import (
    TINY_MODEL,
    Process,
    keyed_client,
    spawn,
    start_api,
    start_worker,
    wait_until,
)
from websockets.exceptions import ConnectionClosed

from cli.serve import io_worker_command, live_worker_command
from shared.localredis import LocalRedis, free_port
from shared.schemas import JobStatus
from shared.state.jobs import JobStore
from shared.state.keys import KeyLimits, KeyStore

# The reaper's bound: a killed worker's `alive` key lapses after VERBATIM_LIVE_LOST_SECONDS (3),
# and a heartbeat (every VERBATIM_HEARTBEAT_INTERVAL_SECONDS, 2) then finds it gone: well
# within VERBATIM_HEARTBEAT_TIMEOUT_SECONDS (10).
HEARTBEAT_TIMEOUT = 10


@dataclass
class Stack:
    redis_url: str
    url: str
    env: dict[str, str]
    logs: Path
    live: Process

    def restart_live_worker(self) -> None:
        self.live.stop()
        self.live = start_live_worker(self.env, self.logs / f"live-{time.monotonic_ns()}.log")


def start_live_worker(env: dict[str, str], log: Path) -> Process:
    process = spawn(live_worker_command(), env | {"VERBATIM_WORKER_METRICS_PORT": "0"}, log)
    wait_until(lambda: "live worker warmed up" in process.output(), "live worker start", process)
    return process


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("recovery-logs")
    with LocalRedis(tmp_path_factory.mktemp("recovery-redis")) as server:
        env = service_env | TINY_MODEL | {
            "VERBATIM_REDIS_URL": server.url,
            "VERBATIM_DATA_DIR": str(tmp_path_factory.mktemp("recovery-data")),
            "VERBATIM_AUTH": "required",
            "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "2",
            "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT),
            "VERBATIM_IO_METRICS_PORT": str(free_port()),
            # Seconds of backlog, not its bytes, are what the flood tests reach first.
            "VERBATIM_LIVE_BACKLOG_SECONDS": "600",
            "VERBATIM_LIVE_BACKLOG_BYTES": str(64 * 1024 * 1024),
            "VERBATIM_LIVE_BACKLOG_FRAMES": "100000",
            # Short buffers and segments: captions settle after a few short decodes, even on
            # a machine where a decode of a full buffer takes a minute.
            "VERBATIM_LIVE_BUFFER_SECONDS": "5",
            "VERBATIM_LIVE_MAX_STEP_SECONDS": "2",
            "VERBATIM_LIVE_SEGMENT_SECONDS": "2",
        }
        worker = start_worker(env, logs / "worker.log")
        io = spawn(io_worker_command(2), env, logs / "io.log")
        api, url = start_api(env, logs / "api.log")
        live = start_live_worker(env, logs / "live.log")
        stack = Stack(server.url, url, env, logs, live)
        try:
            yield stack
        finally:
            for process in (stack.live, api, io, worker):
                process.stop()


def _key(stack: Stack, name: str, webhook_url: str | None = None,
         max_active_jobs: int | None = 1) -> tuple[str, str]:
    client = redis.Redis.from_url(stack.redis_url)
    try:
        key, token = KeyStore(client).create(name, KeyLimits(max_active_jobs=max_active_jobs),
                                             webhook_url=webhook_url)
    finally:
        client.close()
    return key.id, token


def _ended(stack: Stack, job_id: str, timeout: float) -> JobStatus | None:
    """The job's status once it ended, or after `timeout` seconds."""
    store = JobStore(redis.Redis.from_url(stack.redis_url))
    deadline = time.monotonic() + timeout
    while (job := store.get(job_id)) is not None and time.monotonic() < deadline:
        if job.status in (JobStatus.completed, JobStatus.failed):
            break
        time.sleep(0.2)
    store.redis.close()
    return job.status if job else None


def _events_of(receiver: Receiver, job_id: str) -> list[dict]:
    bodies = [json.loads(delivery.body) for delivery in receiver.received]
    return [body for body in bodies if body["data"]["id"] == job_id]


def test_a_killed_live_workers_session_is_ended_by_the_reaper_once_its_client_is_gone(
    stack: Stack, long_recording: Path
) -> None:
    with webhook_receiver(Receiver()) as receiver:
        key_id, token = _key(stack, "live-crash", receiver.url)
        with started_session(ws_url(stack.url, token)) as (ws, started):
            # Four times the recording (144 s), so that its end is never reached first on a
            # machine where one decode takes longer than the audio it decodes.
            streamer = Streamer(ws, pcm16(long_recording) * 4)
            confirmed = first_finals(ws, 300)
            # Frozen first, so that it cannot end the session itself when the client leaves.
            client = redis.Redis.from_url(stack.redis_url)
            holder = int(client.get(f"verbatim:live:{started['session_id']}:claim")
                         .decode().rsplit(":", 1)[1])
            os.kill(holder, signal.SIGSTOP)
            confirmed += [e["segment"] for e in received_so_far(ws, time.monotonic() + 0.5)
                          if e["type"] == "final"]
        streamer.thread.join()
        os.kill(holder, signal.SIGKILL)  # the client gone, then its worker
        assert _ended(stack, started["job_id"], HEARTBEAT_TIMEOUT) == JobStatus.completed
        with keyed_client(stack.url, token) as owner:
            saved = owner.get(f"/v1/jobs/{started['job_id']}/transcript.json").json()
            # What the client heard is saved (and what the worker confirmed as it froze).
            kept = [plain(s) for s in saved["segments"]]
            assert kept[:len(confirmed)] == [plain(s) for s in confirmed]
            # The session's job freed its key's one active slot, and the webhook went once.
            assert JobStore(client).active_count(key_id) == 0
            receiver.wait_for(1)
            time.sleep(3)  # a second delivery would come within a webhook retry
            [event] = _events_of(receiver, started["job_id"])
            assert event["type"] == "job.completed"
        client.close()
        stack.restart_live_worker()
        with started_session(ws_url(stack.url, token)) as (ws, _):
            stop(ws)
            assert events_until_end(ws)[-1][1]["type"] == "done"


def test_a_finished_sessions_webhook_is_sent_once(stack: Stack) -> None:
    with webhook_receiver(Receiver()) as receiver:
        _, token = _key(stack, "live-webhook", receiver.url)
        with started_session(ws_url(stack.url, token)) as (ws, started):
            ws.send(b"\x00\x00" * 16000)
            stop(ws)
            assert events_until_end(ws)[-1][1]["type"] == "done"
        receiver.wait_for(1)
        time.sleep(3)
        [event] = _events_of(receiver, started["job_id"])
        assert event["type"] == "job.completed"


def _flood(stack: Stack, token: str, audio: bytes, seconds: int) -> tuple[dict, list[dict]]:
    """A session sent `seconds` of `audio` (repeated) as fast as it goes, in 1 s frames: its
    `started` event and the events that came meanwhile."""
    with started_session(ws_url(stack.url, token)) as (ws, started):
        second = 32000  # 16 kHz, 16-bit
        for index in range(seconds):
            start = (index * second) % (len(audio) - second)
            ws.send(audio[start:start + second])
        return started, received_so_far(ws, time.monotonic() + 0.2)


def test_a_client_that_leaves_with_a_backlog_frees_the_live_worker_at_once(
    stack: Stack, long_recording: Path
) -> None:
    _, token = _key(stack, "live-flood", max_active_jobs=None)  # the next session overlaps
    started, _ = _flood(stack, token, pcm16(long_recording), 500)  # then the socket closes
    # 500 s were queued: worked through, they would hold the worker for minutes. Dropped, the
    # worker takes the next session within a decode or two.
    with started_session(ws_url(stack.url, token), timeout=60) as (ws, _):
        stop(ws)
        assert events_until_end(ws)[-1][1]["type"] == "done"
    client = redis.Redis.from_url(stack.redis_url)
    assert not client.exists(f"verbatim:live:{started['session_id']}:audio")
    client.close()
    assert _ended(stack, started["job_id"], 30) == JobStatus.completed
    # What was transcribed is what was decoded before the client left, not the 500 s.
    with keyed_client(stack.url, token) as owner:
        saved = owner.get(f"/v1/jobs/{started['job_id']}/transcript.json").json()
    assert all(segment["end"] < 200 for segment in saved["segments"]), saved["segments"][-1]


def test_a_backlog_past_its_seconds_ends_the_session_with_backlog_exceeded(
    stack: Stack, long_recording: Path
) -> None:
    _, token = _key(stack, "live-ahead")
    audio = pcm16(long_recording)
    with started_session(ws_url(stack.url, token)) as (ws, started):
        second = 32000
        for index in range(700):  # VERBATIM_LIVE_BACKLOG_SECONDS is 600 here
            start = (index * second) % (len(audio) - second)
            try:
                ws.send(audio[start:start + second])
            except ConnectionClosed:  # the server may end it before the last frame
                break
        end = events_until_end(ws)[-1][1]
        assert end["type"] == "error"
        assert end["code"] == "backlog_exceeded"
    assert _ended(stack, started["job_id"], 60) == JobStatus.completed
