"""`stop()` lets a beat under way finish before the beat is withdrawn, so none lands after the
withdrawal, and leaves no Redis connection open behind it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.config import Settings
from shared.localredis import LocalRedis
from shared.queue import make_celery
from shared.state.heartbeats import WORKERS_KEY, Heartbeats, worker_key
from worker import heartbeat

# Longer than `stop()` once waited, shorter than it waits now.
SLOW_BEAT_SECONDS = 3


def test_a_beat_under_way_at_stop_lands_before_the_withdrawal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model is not what this checks: the thread goes straight to beating.
    monkeypatch.setattr(heartbeat, "prepare", lambda settings: None)
    beating = threading.Event()
    real_beat = Heartbeats.beat

    def slow_beat(self: Heartbeats, *args: Any, **kwargs: Any) -> None:
        beating.set()
        time.sleep(SLOW_BEAT_SECONDS)  # a Redis that answers late
        real_beat(self, *args, **kwargs)

    monkeypatch.setattr(Heartbeats, "beat", slow_beat)
    with LocalRedis(tmp_path) as server, redis.Redis.from_url(server.url) as client:
        settings = Settings(redis_url=server.url, device="cpu", heartbeat_interval_seconds=0.1)
        connections = len(client.client_list())
        heartbeat.start(settings, make_celery(settings))  # no orphans: it sends nothing
        assert beating.wait(10), "the thread never beat"
        heartbeat.stop()
        assert heartbeat._thread is not None
        assert not heartbeat._thread.is_alive(), "a beat may still land after the withdrawal"
        assert client.zcard(WORKERS_KEY) == 0
        assert client.exists(worker_key(heartbeat.worker_id())) == 0
        assert len(client.client_list()) == connections
