"""Request heads that never finish are closed after `request_head_timeout_seconds` by the API on
its own (uvicorn with `api/protocol.py`), with real sockets on loopback; bodies are not timed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import DATA, start_api

HEAD_TIMEOUT = 1.5
SLACK = 3.0  # a loaded 2-core machine
SOCKETS = 10  # of each kind


@pytest.fixture(scope="module")
def api_address(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int]]:
    env = service_env | {
        "VERBATIM_REQUEST_HEAD_TIMEOUT_SECONDS": str(HEAD_TIMEOUT),
        "VERBATIM_REDIS_URL": service_env["VERBATIM_REDIS_URL"].rsplit("/", 1)[0] + "/12",
    }
    process, url = start_api(env, tmp_path_factory.mktemp("heads") / "api.log")
    host, port = url.removeprefix("http://").split(":")
    yield host, int(port)
    process.stop()


def connect(address: tuple[str, int], data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(address, timeout=HEAD_TIMEOUT + SLACK + 5)
    sock.sendall(data)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def closed_while_sending(sock: socket.socket) -> bytes:
    """As `read_until_closed`, for a client still sending: closing a connection with unread
    bytes resets it, which may overtake the answer."""
    try:
        return read_until_closed(sock)
    except ConnectionResetError:
        return b""


def assert_timed_out(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(body)["error"]["code"] == "request_timeout"


def trickle(sock: socket.socket, stop: threading.Event) -> None:
    """A header that never ends, one byte every 0.3 s (each byte would reset uvicorn's own
    keep-alive timer)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    while not stop.wait(0.3):
        try:
            sock.sendall(b"a")
        except OSError:
            return


def test_unfinished_heads_are_closed_in_time(api_address: tuple[str, int]) -> None:
    started = time.monotonic()
    silent = [connect(api_address) for _ in range(SOCKETS)]
    partial = [connect(api_address, b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\n")
               for _ in range(SOCKETS)]
    slow = [connect(api_address) for _ in range(SOCKETS)]
    stop = threading.Event()
    threads = [threading.Thread(target=trickle, args=(s, stop), daemon=True) for s in slow]
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(base_url=f"http://{api_address[0]}:{api_address[1]}") as http:
            assert http.get("/healthz").status_code == 200  # others are served meanwhile
        for sock in silent:
            assert read_until_closed(sock) == b""  # nothing sent, nothing answered
        for sock in partial:
            assert_timed_out(read_until_closed(sock))
        for sock in slow:
            if answer := closed_while_sending(sock):
                assert_timed_out(answer)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        for sock in silent + partial + slow:
            sock.close()
    assert HEAD_TIMEOUT <= elapsed < HEAD_TIMEOUT + SLACK


def test_a_later_request_on_a_kept_alive_connection_has_its_own_deadline(
    api_address: tuple[str, int],
) -> None:
    with connect(api_address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") as sock:
        first = b""
        while b'{"status":"ok"}' not in first:
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and no end of head
        started = time.monotonic()
        assert_timed_out(read_until_closed(sock))
        assert HEAD_TIMEOUT * 0.9 <= time.monotonic() - started < HEAD_TIMEOUT + SLACK


def test_a_slow_body_is_not_cut_short(api_address: tuple[str, int], tmp_path: Path) -> None:
    audio = (DATA / "1089-134686-0001.flac").read_bytes()
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="slow.flac"\r\n\r\n'
            + audio + b"\r\n--b--\r\n")
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with connect(api_address, head + body[:1000]) as sock:
        time.sleep(HEAD_TIMEOUT + 1)  # longer than a head may take, inside the body
        sock.sendall(body[1000:])
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 202 "), answer[:500]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["filename"] == "slow.flac"
