"""A stand-in for the gateway in front of the API (nginx, a load balancer): it forwards to the
real API, or answers some requests itself as a gateway does while the API restarts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Event, Thread

import httpx


@dataclass
class Rule:
    """Requests the proxy answers itself: `times` of them, or all when None."""

    method: str
    path: str
    """A regular expression the whole path must match."""
    status: int
    times: int | None
    body: bytes
    headers: dict[str, str]
    hold: bool
    """Answer only once the proxy is `released`, as a gateway waiting on a stuck upstream."""


@dataclass
class Proxy:
    """An HTTP proxy in front of `target` that answers some requests itself, as a gateway does
    while the API restarts; it records what it saw and the ids of the jobs created."""

    url: str = ""
    target: str = ""
    rules: list[Rule] = field(default_factory=list)
    received: list[tuple[str, str]] = field(default_factory=list)
    """(method, path) of every request, in order, as it arrives."""
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request, in order, as it is answered."""
    created: list[str] = field(default_factory=list)
    released: Event = field(default_factory=Event)

    def answer(
        self, method: str, path: str, status: int, times: int | None = None,
        body: bytes | None = None, headers: dict[str, str] | None = None, hold: bool = False,
    ) -> None:
        """Answer matching requests with `status`; by default a gateway's HTML page, or the
        API's own envelope for a 503 (as when Redis is down)."""
        if body is None and status == 503:
            error = {"code": "service_unavailable", "message": "The service is unavailable."}
            body = json.dumps({"error": error}).encode()
            headers = {"Content-Type": "application/json"}
        elif body is None:
            body = f"<html><h1>{status} Bad Gateway</h1></html>".encode()
            headers = {"Content-Type": "text/html"}
        self.rules.append(Rule(method, path, status, times, body, headers or {}, hold))

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """The status, headers and body to send back."""
        self.received.append((method, path))
        for rule in self.rules:
            if rule.method in (method, "*") and re.fullmatch(rule.path, path) and rule.times != 0:
                rule.times = None if rule.times is None else rule.times - 1
                if rule.hold:
                    self.released.wait()
                return rule.status, rule.headers, rule.body
        kept = {k: v for k, v in headers.items() if k.lower() == "content-type"}
        response = httpx.request(method, self.target + path, headers=kept, content=body, timeout=60)
        if method == "POST" and response.status_code == 202:
            self.created.append(response.json()["id"])
        kind = response.headers.get("content-type", "")
        return response.status_code, {"Content-Type": kind}, response.content


@contextmanager
def serving(state: Proxy) -> Iterator[Proxy]:
    """`state` listening on a free local port (its `url`) until the block ends."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, headers, content = state.handle(
                self.command, self.path, dict(self.headers), body
            )
            state.seen.append((self.command, self.path, status))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client gone before its answer (a command interrupted) is expected

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
