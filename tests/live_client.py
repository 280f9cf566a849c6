"""A small client of `WS /v1/live` for the tests: stream a recording, collect the events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import decode_audio
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

FRAME_SECONDS = 0.1


def ws_url(api_url: str, token: str | None = None) -> str:
    url = api_url.replace("http://", "ws://") + "/v1/live"
    return f"{url}?access_token={token}" if token else url


def pcm16(path: Path, rate: int = 16000) -> bytes:
    """A recording as little-endian 16-bit mono PCM at `rate`."""
    samples = decode_audio(str(path), sampling_rate=rate)
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def start_message(**options: Any) -> str:
    return json.dumps({"type": "start", "encoding": "pcm_s16le", "sample_rate": 16000,
                       "language": "en", **options})


def receive(ws: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


@contextmanager
def open_session(url: str, **options: Any) -> Iterator[tuple[ClientConnection, dict[str, Any]]]:
    """A session asked for: the socket and its first event (`started`, or the error)."""
    with connect(url, open_timeout=10, close_timeout=30) as ws:
        ws.send(start_message(**options))
        yield ws, receive(ws)


@dataclass
class Streamer:
    """Sends audio at real-time pace from a thread, noting when it sent its last frame."""

    ws: ClientConnection
    audio: bytes
    rate: int = 16000
    seconds: float | None = None  # stop early, without `stop` (a client that goes away)
    finished_at: float | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        frame = int(FRAME_SECONDS * self.rate) * 2
        began = time.monotonic()
        for index, start in enumerate(range(0, len(self.audio), frame)):
            if self.seconds is not None and index * FRAME_SECONDS >= self.seconds:
                break
            time.sleep(max(0.0, began + index * FRAME_SECONDS - time.monotonic()))
            try:
                self.ws.send(self.audio[start:start + frame])
            except ConnectionClosed:
                return  # the server ended the session
        self.finished_at = time.monotonic()
        if self.seconds is None:
            self.ws.send(json.dumps({"type": "stop"}))


def events_until_end(ws: ClientConnection, timeout: float = 180) -> list[tuple[float, dict]]:
    """(arrival time, event) up to and including `done` or `error`; `timeout` between two
    events (on the busy 2-core test machine one decode of a full buffer took up to a minute)."""
    events = []
    while True:
        event = receive(ws, timeout)
        events.append((time.monotonic(), event))
        if event["type"] in ("done", "error"):
            return events


def stop(ws: ClientConnection) -> None:
    ws.send(json.dumps({"type": "stop"}))


@contextmanager
def started_session(url: str, timeout: float = 30,
                    **options: Any) -> Iterator[tuple[ClientConnection, dict[str, Any]]]:
    """A started session, asked for again while the live worker's one slot is still taken
    (by a session just ended, whose last decode is under way)."""
    deadline = time.monotonic() + timeout
    while True:
        with open_session(url, **options) as (ws, first):
            if first["type"] == "started":
                yield ws, first
                return
            assert first.get("code") == "no_live_worker", first
        assert time.monotonic() < deadline, "no live worker became free"
        time.sleep(0.5)


def received_so_far(ws: ClientConnection, until: float) -> list[dict[str, Any]]:
    """The events that arrive until the monotonic time `until`."""
    events = []
    while (left := until - time.monotonic()) > 0:
        try:
            events.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            break
    return events


def plain(segment: dict) -> tuple:
    """What a client sees of a segment: its id, times and text."""
    return segment["id"], segment["start"], segment["end"], segment["text"]


def first_finals(ws: ClientConnection, seconds: float = 90) -> list[dict]:
    """The segments of the events up to and including the first with a final segment."""
    seen: list[dict] = []
    deadline = time.monotonic() + seconds
    while not any(e["type"] in ("final", "done", "error") for e in seen):
        seen.append(receive(ws, max(0.1, deadline - time.monotonic())))
    assert any(e["type"] == "final" for e in seen), seen
    return [e["segment"] for e in seen if e["type"] == "final"]


def close_code(ws: ClientConnection, timeout: float = 30) -> int | None:
    """The close code the server sent, once the socket closes (events before it are skipped;
    None: closed without a code)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
