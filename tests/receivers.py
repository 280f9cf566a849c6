"""Real HTTP servers on loopback for the integration tests: a webhook receiver that answers
a script of statuses, and a media server with redirects, 404s and endless bodies."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers each POST with the next status of `statuses` (the last one repeats), after
    `delay` seconds."""

    statuses: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    answered: threading.Event = field(default_factory=threading.Event)
    hold: threading.Event | None = None
    """When set, each answer waits (at most 60 s) for this event."""

    def wait_for(self, count: int, timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} deliveries arrived")
            time.sleep(0.05)
        return self.received


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], port: int = 0,
            host: str = "127.0.0.1") -> Iterator[_Server]:
    kind = type("Server", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host \
        else _Server
    server = kind((host, port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def webhook_receiver(receiver: Receiver, port: int = 0) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            receiver.received.append(Received(dict(self.headers), body, time.monotonic()))
            index = min(len(receiver.received), len(receiver.statuses)) - 1
            time.sleep(receiver.delay)
            if receiver.hold is not None:
                receiver.hold.wait(60)
            self.send_response(receiver.statuses[index])
            self.send_header("content-length", "0")
            self.end_headers()
            receiver.answered.set()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler, port) as server:
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/verbatim"
        yield receiver


@contextmanager
def media_server(files: dict[str, Path], host: str = "127.0.0.1",
                 requested: list[str] | None = None) -> Iterator[str]:
    """Serves `/{name}` for each file; `/redirect/{n}/{name}` redirects n times then serves
    it; `/to?location=...` redirects there; `/endless` streams zeros without end;
    `/trickle/{seconds}/{name}` sends the file evenly over that many seconds (a slow server);
    anything else is 404. Each request's path is appended to `requested` as it begins. The
    base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if requested is not None:
                requested.append(self.path)
            path = self.path.split("?")[0]
            parts = path.strip("/").split("/")
            if parts[0] == "redirect" and len(parts) == 3:
                left, name = int(parts[1]), parts[2]
                target = f"/redirect/{left - 1}/{name}" if left > 1 else f"/{name}"
                return self._redirect(target)
            if parts[0] == "to":
                return self._redirect(self.path.split("location=", 1)[1])
            if parts[0] == "endless":
                return self._endless()
            if parts[0] == "trickle" and len(parts) == 3 and parts[2] in files:
                return self._trickle(float(parts[1]), files[parts[2]].read_bytes())
            if parts[0] in files:
                data = files[parts[0]].read_bytes()
                self.send_response(200)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return None

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()

        def _trickle(self, seconds: float, data: bytes) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            steps = max(1, int(seconds * 10))
            size = -(-len(data) // steps)
            try:
                for start in range(0, len(data), size):
                    self.wfile.write(data[start:start + size])
                    self.wfile.flush()
                    time.sleep(seconds / steps)
            except OSError:  # the fetcher went away (killed)
                pass

        def _endless(self) -> None:
            self.send_response(200)
            self.end_headers()
            try:
                while True:
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler, host=host) as server:
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{server.server_address[1]}"
