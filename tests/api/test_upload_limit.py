"""The size limit trips while the upload streams in, on a real uvicorn server."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from support import Process, start_api

from shared.queue import queue_depth

LIMIT = 2 * 1024 * 1024
CHUNK = 1 << 20
OFFERED_CHUNKS = 64


@pytest.fixture
def small_limit_api(
    service_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, Path, redis.Redis]]:
    """An API with a 2 MiB limit on its own Redis database, which no worker consumes."""
    url = service_env["VERBATIM_REDIS_URL"].rsplit("/", 1)[0] + "/2"
    env = service_env | {
        "VERBATIM_REDIS_URL": url,
        "VERBATIM_DATA_DIR": str(tmp_path / "data"),
        "VERBATIM_MAX_UPLOAD_BYTES": str(LIMIT),
    }
    api: Process
    api, base = start_api(env, tmp_path / "api.log")
    queue_db = redis.Redis.from_url(url)
    yield base, tmp_path / "data" / "uploads", queue_db
    queue_db.flushdb()
    queue_db.close()
    api.stop()


def stream_upload(base: str) -> tuple[bytes, int]:
    """Send a chunked multipart upload until the server answers; returns (reply, chunks sent)."""
    address = urlsplit(base)
    boundary = "limit-test"
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/jobs HTTP/1.1\r\nHost: {address.netloc}\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
        )
        _send_chunk(sock, f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                          f"filename=\"big.wav\"\r\n\r\n".encode())
        sent = 0
        try:
            while sent < OFFERED_CHUNKS and not select.select([sock], [], [], 0.05)[0]:
                _send_chunk(sock, b"\0" * CHUNK)
                sent += 1
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_reply(sock), sent


def _read_reply(sock: socket.socket) -> bytes:
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
        data = sock.recv(65536)
        if not data:
            break
        reply += data
    return reply


def _send_chunk(sock: socket.socket, data: bytes) -> None:
    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def test_oversized_upload_is_refused_mid_stream(
    small_limit_api: tuple[str, Path, redis.Redis],
) -> None:
    base, uploads, queue_db = small_limit_api
    reply, sent = stream_upload(base)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"code":"payload_too_large"' in reply
    assert sent < OFFERED_CHUNKS, "the server read the whole body before refusing it"
    assert queue_depth(queue_db) == 0
    assert list(uploads.iterdir()) == [], "the partial upload was left on disk"


def test_an_abandoned_upload_leaves_no_file(
    small_limit_api: tuple[str, Path, redis.Redis],
) -> None:
    base, uploads, queue_db = small_limit_api
    address = urlsplit(base)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            f"POST /v1/jobs HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Length: 2000000\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\n\r\n".encode()
        )
        sock.sendall(b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"')
        sock.sendall(b"\r\n\r\n" + b"\0" * 1_500_000)
        deadline = time.monotonic() + 10
        while not list(uploads.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(uploads.glob("*")), "the upload never reached the disk"
    deadline = time.monotonic() + 10
    while list(uploads.glob("*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(uploads.glob("*")) == [], "the partial upload was left on disk"
    assert queue_depth(queue_db) == 0
