"""Local process management: the API, a worker, or both with a private Redis (`serve`).

The API and the worker are started as processes, never imported: an API host has no model
stack, a worker host no web stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from types import FrameType
from typing import NoReturn

from shared.config import get_settings
from shared.localredis import LocalRedis

# How long `serve` waits for its children beyond the worker's shutdown grace: a `threads` pool's
# job notices a cold stop at its next segment, which on a busy machine can be a 30 s chunk's
# decode away (a second Ctrl-C skips the wait).
STOP_MARGIN_SECONDS = 30.0
# A worker's SIGTERM becomes Celery's soft shutdown (see shared/queue.py), so that stopping it
# during a job puts the job back on the queue instead of stranding it.
WORKER_ENV = {"REMAP_SIGTERM": "SIGQUIT"}


# uvicorn's HTTP protocol with a deadline on request heads (see api/protocol.py).
HTTP_PROTOCOL = "api.protocol:HeadTimeoutProtocol"


def api_command(host: str, port: int, max_frame_bytes: int | None = None) -> list[str]:
    """The uvicorn command line serving the API. WebSocket frames (live sessions) are bounded
    by `max_frame_bytes`, by default `live_max_frame_bytes`: uvicorn refuses a larger one from
    its header, before reading it (its own default is 16 MiB)."""
    frame = max_frame_bytes or get_settings().live_max_frame_bytes
    return [sys.executable, "-m", "uvicorn", "api.main:app", "--host", host, "--port", str(port),
            "--http", HTTP_PROTOCOL, "--ws-max-size", str(frame)]


def worker_command(concurrency: int | None = None) -> list[str]:
    """The Celery command line of one worker running `concurrency` jobs at once (default
    `worker_concurrency`, else the worker's own choice for its device: `worker/model.py`) in
    the pool `worker_pool` names: that many processes under `prefork`, that many threads
    sharing one model under `threads`."""
    settings = get_settings()
    jobs = concurrency or settings.worker_concurrency
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
        "--pool", settings.worker_pool, *(["--concurrency", str(jobs)] if jobs else []),
        "--loglevel", "INFO",
    ]  # fmt: skip


def io_worker_command(concurrency: int = 8) -> list[str]:
    """The Celery command line of the I/O worker (webhooks, media URLs: `courier/`): a pool of
    `concurrency` fetch threads that consumes the I/O queue alone, never transcriptions, and
    beside it threads of its own that deliver webhooks (`io_webhook_threads`)."""
    from shared.state.webhooks import IO_QUEUE  # imports Celery, which a client machine lacks

    return [
        sys.executable, "-m", "celery", "-A", "courier.celery_app:app", "worker",
        "--pool", "threads", "--concurrency", str(concurrency), "--queues", IO_QUEUE,
        "--loglevel", "INFO", "--hostname", "io@%h",
    ]  # fmt: skip


def live_worker_command(number: int = 1) -> list[str]:
    """The Celery command line of a live worker (`worker/live_task.py`): one process on the live
    queue alone, holding one live session at a time with its own model (Celery's solo pool:
    decodes in a pool child or a thread ran several times slower, see `worker/live_task.py`)."""
    from shared.state.live_sessions import LIVE_QUEUE

    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app:app", "worker",
        "--pool", "solo", "--queues", LIVE_QUEUE, "--loglevel", "INFO",
        "--hostname", f"live{number}@%h",
    ]  # fmt: skip


# `serve` runs a worker and a live worker on one host: only the first serves worker metrics.
LIVE_WORKER_ENV = {**WORKER_ENV, "VERBATIM_WORKER_METRICS_PORT": "0"}


def _exec(command: list[str], env: dict[str, str] | None = None) -> NoReturn:
    """Replace this process with `command`, so that signals reach it directly."""
    sys.stdout.flush()
    os.execve(command[0], command, {**os.environ, **(env or {})})


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _auth_for_serve() -> str:
    """`serve`'s auth: as configured, else `off` (a one-machine setup, bound to loopback by
    default); the API it starts inherits the choice."""
    settings = get_settings()
    if "auth" not in settings.model_fields_set:
        os.environ["VERBATIM_AUTH"] = "off"
        return "off"
    return settings.auth


def auth_notice(auth: str, host: str, port: int) -> str | None:
    """What to tell the person starting the API about who may use it (None: keys needed)."""
    if auth != "off":
        return None
    if host in LOOPBACK:
        return (f"  auth:     off - anyone who can reach port {port} on this machine can use it "
                "(VERBATIM_AUTH=required asks for API keys)")
    return (f"verbatim: WARNING: VERBATIM_AUTH=off on {host}: anyone who can reach port {port} "
            "can read, download and delete every transcript; set VERBATIM_AUTH=required and "
            "create keys with `verbatim keys create`")


def _banner(host: str, port: int, redis_url: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    base = f"http://{shown}:{port}"
    return (
        f"Verbatim is starting on {base} (Redis: {redis_url}); Ctrl-C stops everything.\n"
        f"  browser:  {base}/\n"
        f"  command:  {_command()} transcribe talk.mp3 --format srt\n"
        f"  submit:   curl -F file=@tests/data/jfk.flac {base}/v1/jobs\n"
        f"  poll:     curl {base}/v1/jobs/<id>\n"
        f"  download: curl -OJ {base}/v1/jobs/<id>/transcript.srt\n"
    )


def _command() -> str:
    """How this command was called (`.venv/bin/verbatim` under `make run`), for the banner."""
    called = sys.argv[0]
    return called if Path(called).name == "verbatim" else "verbatim"


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Ask every child to stop, wait a while, then kill what is left with its process group."""
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    grace = get_settings().worker_shutdown_grace_seconds
    deadline = time.monotonic() + grace + STOP_MARGIN_SECONDS
    # A second Ctrl-C skips the wait.
    with suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
        for child in children.values():
            child.wait(max(0.0, deadline - time.monotonic()))
    for name, child in children.items():
        if child.poll() is None:
            print(f"verbatim: {name} did not stop in time; killing it", file=sys.stderr)
            with suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait for Ctrl-C or SIGTERM (status 0) or for a child to exit on its own (status 1)."""
    try:
        while True:
            for name, child in children.items():
                if child.poll() is not None:
                    print(
                        f"verbatim: the {name} exited with status {child.returncode}; "
                        "stopping the rest",
                        file=sys.stderr,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("verbatim: stopping", file=sys.stderr)
        return 0


def run_api(host: str, port: int) -> NoReturn:
    """Become the API process (`verbatim api`)."""
    if (notice := auth_notice(get_settings().auth, host, port)) and host not in LOOPBACK:
        print(notice, file=sys.stderr, flush=True)
    _exec(api_command(host, port))


def run_worker(concurrency: int | None) -> NoReturn:
    """Become a worker process (`verbatim worker`)."""
    _exec(worker_command(concurrency), WORKER_ENV)


def run_live_worker(number: int) -> NoReturn:
    """Become a live worker process (`verbatim live-worker`)."""
    _exec(live_worker_command(number), WORKER_ENV)


def run_io_worker(concurrency: int) -> NoReturn:
    """Become the I/O worker process (`verbatim io-worker`)."""
    _exec(io_worker_command(concurrency), WORKER_ENV)


def serve(host: str, port: int, concurrency: int | None) -> int:
    """Run the API, one worker, `live_max_sessions` live workers and the I/O worker, on a
    private Redis unless VERBATIM_REDIS_URL names one."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        with ExitStack() as stack:
            redis_url = _redis_url(stack)
            auth = _auth_for_serve()
            children: dict[str, subprocess.Popen[bytes]] = {}
            stack.callback(_stop, children)
            # Own sessions: Ctrl-C reaches only this process, which stops the children.
            children["API"] = subprocess.Popen(
                api_command(host, port), start_new_session=True
            )
            children["worker"] = subprocess.Popen(
                worker_command(concurrency), env={**os.environ, **WORKER_ENV},
                start_new_session=True,
            )
            for number in range(1, get_settings().live_max_sessions + 1):
                children[f"live worker {number}"] = subprocess.Popen(
                    live_worker_command(number), env={**os.environ, **LIVE_WORKER_ENV},
                    start_new_session=True,
                )
            children["I/O worker"] = subprocess.Popen(
                io_worker_command(), env={**os.environ, **WORKER_ENV}, start_new_session=True
            )
            print(_banner(host, port, redis_url), flush=True)
            if (notice := auth_notice(auth, host, port)) and host in LOOPBACK:
                print(notice, flush=True)
            elif notice:
                print(notice, file=sys.stderr, flush=True)
            return _supervise(children)
    except KeyboardInterrupt:  # during start-up; what had started is stopped by now
        return 130


def _redis_url(stack: ExitStack) -> str:
    """The configured Redis, or a private one under the data dir that `stack` will stop."""
    settings = get_settings()
    if "redis_url" in settings.model_fields_set:  # set in the environment or `.env`
        return settings.redis_url
    url = stack.enter_context(LocalRedis(settings.data_dir)).url
    os.environ["VERBATIM_REDIS_URL"] = url  # inherited by the API and the worker
    return url
