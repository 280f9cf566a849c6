"""The benchmarks' own stack: an API process and Celery workers on a Redis of their own.

The benchmarks run from the repository root (`.venv/bin/python bench/NAME.py`); their folder is
on `sys.path`, and the repository root is added so that they import the service's packages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cli.serve import api_command  # noqa: E402
from shared.localredis import free_port  # noqa: E402


def start_api(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """uvicorn serving the API on a free loopback port, and its URL."""
    port = free_port()
    env = {"VERBATIM_AUTH": "off", **env}  # these benchmarks measure jobs, not API keys
    frame = env.get("VERBATIM_LIVE_MAX_FRAME_BYTES")
    api = subprocess.Popen(
        api_command("127.0.0.1", port, int(frame) if frame else None),
        env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    return api, f"http://127.0.0.1:{port}"


def wait_healthy(url: str, timeout: float = 60) -> None:
    """Until the API at `url` answers `/healthz` (no worker needed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the API at {url} did not start")


def wait_ready(http: httpx.Client, timeout: float = 120) -> None:
    """Until `/readyz` says a worker has its model loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if http.get("/readyz").status_code == 200:
                return
        time.sleep(0.5)
    raise SystemExit("the stack did not become ready")


@dataclass
class Worker:
    """A Celery worker with one pool process, started (again) under a new log each time."""

    name: str
    env: dict[str, str]
    logs: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.logs / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
             "--pool", "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle",
             "--hostname", f"{self.name}-{self.starts}@%h"],
            env=self.env | {"REMAP_SIGTERM": "SIGQUIT", "VERBATIM_WORKER_METRICS_PORT": "0"},
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )

    def pool(self) -> list[int]:
        assert self.process is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with suppress(OSError, IndexError, ValueError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(stat.parent.name))
        return found

    def kill(self) -> None:
        """SIGKILL the main process and its pool together, as an OOM kill or a lost host."""
        assert self.process is not None
        children = self.pool()
        self.process.kill()
        self.process.wait()
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
