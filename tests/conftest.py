"""Session fixtures: a private redis-server, a real Celery worker and a real API process.

Helpers shared by test modules live in `support.py`, imported as `from support import ...`
(every conftest.py is registered under the one name `conftest`, so it cannot be imported)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from faster_whisper import decode_audio
from file_costs import read_costs
from media_samples import KINDS, make_sample
from objectstore import SeaweedStore
from support import (
    DATA,
    Process,
    install_missing_packages,
    spawn,
    start_api,
    start_auth_api,
    start_worker,
    wait_until,
    write_wav,
)

from cli.serve import io_worker_command, live_worker_command
from shared.localredis import LocalRedis, free_port

# Today's open behaviour for every `Settings()` the tests build in this process (and, through
# `service_env`, for the session's API); tests of API keys ask for `auth="required"` themselves.
os.environ["VERBATIM_AUTH"] = "off"

_INSTALL: pytest.StashKey[subprocess.Popen[bytes] | None] = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    """In the run's first process (pytest-xdist's controller, or the only one), begin
    installing the Debian packages the suite needs that are missing (`support.py`)."""
    if not hasattr(config, "workerinput"):
        config.stash[_INSTALL] = install_missing_packages()


def pytest_unconfigure(config: pytest.Config) -> None:
    """An install still going at the end is waited for, never cut off half-way through."""
    if (install := config.stash.get(_INSTALL, None)) is not None:
        install.wait()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slowest files first, as measured in `file_costs.txt`. pytest-xdist hands whole files to
    its processes in collection order (`--dist loadfile --no-loadscope-reorder`, as `make test`
    runs it), each taking the next when it is nearly done: a long file left for last would
    keep one process working alone while the other idles. Tests keep their order in a file."""
    costs = read_costs()
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.nodeid.split("::")[0], index)

    def rank(item: pytest.Item) -> tuple[float, int]:
        path = item.nodeid.split("::")[0]
        return -costs.get(path, 0.0), first[path]

    items.sort(key=rank)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedStore]:
    """A real S3-compatible store (SeaweedFS) on loopback ports, for `VERBATIM_STORAGE=s3`."""
    store = SeaweedStore(tmp_path_factory.mktemp("seaweed")).start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture(scope="session")
def service_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("data")
    return {
        **os.environ,
        "VERBATIM_REDIS_URL": redis_url,
        "VERBATIM_DATA_DIR": str(data_dir),
        "VERBATIM_PROGRESS_INTERVAL_SECONDS": "0",
        # The session's API keeps today's open behaviour; the tenancy tests start API processes
        # of their own with `required` (`support.start_auth_api`).
        "VERBATIM_AUTH": "off",
        # Integrations (issue 13): the tests' own servers listen on 127.0.0.1 only; webhook
        # retries 0.5, 1, 2 and 4 s apart (each +-20 %).
        "VERBATIM_FETCH_ALLOW": "127.0.0.1",
        "VERBATIM_WEBHOOK_ATTEMPTS": "5",
        "VERBATIM_WEBHOOK_WINDOW_SECONDS": "7.5",
        "VERBATIM_WEBHOOK_TIMEOUT_SECONDS": "3",
        "VERBATIM_IO_METRICS_PORT": str(free_port()),
        # Live sessions (`tests/e2e/test_live.py`): one live worker, so that a second session
        # finds none; short limits, so that the tests of them stay short.
        "VERBATIM_LIVE_IDLE_TIMEOUT_SECONDS": "3",
        "VERBATIM_LIVE_LOST_SECONDS": "3",
        "VERBATIM_LIVE_MAX_FRAME_BYTES": "65536",
    }


@pytest.fixture(scope="session")
def io_worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """The I/O worker (webhook deliveries, media URL downloads)."""
    process = spawn(io_worker_command(4), service_env, tmp_path_factory.mktemp("logs") / "io.log")
    wait_until(lambda: " ready." in process.output(), "I/O worker start", process)
    process.metrics_url = f"http://127.0.0.1:{service_env['VERBATIM_IO_METRICS_PORT']}/metrics"
    yield process
    process.stop()


@pytest.fixture(scope="session")
def live_worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A live worker (one session at a time), once its model is loaded and has made its first
    (slowest) decode; its `/metrics` on a free port."""
    port = free_port()
    env = service_env | {"VERBATIM_WORKER_METRICS_PORT": str(port)}
    process = spawn(live_worker_command(), env, tmp_path_factory.mktemp("logs") / "live.log")
    wait_until(lambda: "live worker warmed up" in process.output(), "live worker start", process)
    process.metrics_url = f"http://127.0.0.1:{port}/metrics"
    yield process
    process.stop()


@pytest.fixture(scope="session")
def worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    process = start_worker(service_env, tmp_path_factory.mktemp("logs") / "worker.log")
    yield process
    process.stop()


@pytest.fixture(scope="session")
def api_process(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, str]]:
    """The session's API process and its base URL."""
    process, url = start_api(service_env, tmp_path_factory.mktemp("logs") / "api.log")
    yield process, url
    process.stop()


@pytest.fixture(scope="session")
def auth_api(
    service_env: dict[str, str], worker: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, str]]:
    """A second API process, with `VERBATIM_AUTH=required`, on the session's Redis and worker."""
    process, url = start_auth_api(service_env, tmp_path_factory.mktemp("logs") / "auth-api.log")
    yield process, url
    process.stop()


@pytest.fixture(scope="session")
def auth_api_2(
    service_env: dict[str, str], worker: Process, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, str]]:
    """Another auth-required API process: a replica beside `auth_api`."""
    process, url = start_auth_api(service_env, tmp_path_factory.mktemp("logs") / "auth-api-2.log")
    yield process, url
    process.stop()


@pytest.fixture(scope="session")
def api_url(api_process: tuple[Process, str]) -> str:
    return api_process[1]


@pytest.fixture(scope="session")
def client(api_url: str, worker: Process) -> Iterator[httpx.Client]:
    """An HTTP client for the running API, with a worker behind it."""
    with httpx.Client(base_url=api_url, timeout=30) as http:
        yield http


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 36 s of continuous read speech: long enough to act on a job mid-run."""
    parts = [decode_audio(str(DATA / f"LJ001-000{i}.flac")) for i in (1, 3, 5, 7)]
    return write_wav(tmp_path_factory.mktemp("audio") / "lj-passage.wav", np.concatenate(parts))


@pytest.fixture(scope="session")
def media_samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Extension -> a real recording of that kind (`tests/media_samples.py`)."""
    folder = tmp_path_factory.mktemp("media")
    return {kind.extension: make_sample(folder / f"speech.{kind.extension}", kind)
            for kind in KINDS}


@pytest.fixture(scope="session")
def keeping_api_url(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second API process on the session's Redis and data directory with
    `VERBATIM_KEEP_AUDIO=true`: its jobs keep their upload (the session worker follows the
    job record), so their recording can be played back."""
    env = {**service_env, "VERBATIM_KEEP_AUDIO": "true"}
    process, url = start_api(env, tmp_path_factory.mktemp("logs") / "keeping-api.log")
    yield url
    process.stop()
