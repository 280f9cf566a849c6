"""Session fixtures: a private redis-server, a real Celery worker and a real API process.

Helpers shared by test modules live in `support.py`, imported as `from support import ...`
(every conftest.py is registered under the one name `conftest`, so it cannot be imported)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import redis
from support import Process, start_api, start_worker

from shared.localredis import LocalRedis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with LocalRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture(scope="session")
def service_env(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data_dir = tmp_path_factory.mktemp("data")
    return {
        **os.environ,
        "VERBATIM_REDIS_URL": redis_url,
        "VERBATIM_DATA_DIR": str(data_dir),
        "VERBATIM_PROGRESS_INTERVAL_SECONDS": "0",
    }


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
