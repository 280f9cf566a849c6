"""The API in-process (Starlette's TestClient) on a Redis database of its own, with no worker.

Each module defines `settings`, choosing its database (a number no other module uses), so
these fixtures can flush it: what a test leaves behind is exactly what it asserts on.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.main import create_app
from shared.config import Settings


@pytest.fixture
def queue_db(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def api(settings: Settings, queue_db: redis.Redis) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
