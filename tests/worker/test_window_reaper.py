"""The reaper's side of spread windows, on a real Redis and Celery's own messages: a window
held or run by a worker that is gone goes back on the queue, one held by a live worker stays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from shared.localredis import LocalRedis
from shared.queue import make_celery, queue_depth
from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import JobStore, new_job_id
from shared.state.spread_plans import Spreads
from worker.reaper import requeue_windows


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalRedis]:
    """A Redis of its own: the messages sent here must reach no running worker."""
    with LocalRedis(tmp_path) as server:
        yield server


def spread_job(spreads: Spreads) -> str:
    job_id = new_job_id()
    spreads.store.create(job_id, "long.wav", JobOptions(), 30.0, Path("/nonexistent"))
    spreads.store.update(job_id, status=JobStatus.processing)
    spreads.plan(job_id, 1, 30.0, None, 60)
    for index in range(3):
        spreads.add_window(job_id, index, index * 160000)
    return job_id


def test_a_window_held_by_a_gone_worker_is_requeued_and_one_held_by_a_live_one_is_not(
    server: LocalRedis,
) -> None:
    spreads = Spreads(JobStore.from_url(server.url))
    celery = make_celery(Settings(redis_url=server.url))
    job_id = spread_job(spreads)
    spreads.mark_received(job_id, 0, "host:10")  # a worker's main process holds window 0
    spreads.begin_window(job_id, 1, 1, "host:11")  # a pool process of it runs window 1
    live = {"host:10", "host:11"}
    assert requeue_windows(spreads, live, celery, 0, "base") == []
    assert queue_depth(spreads.redis, ["base"]) == 0
    assert sorted(requeue_windows(spreads, {"host:11"}, celery, 0, "base")) == [(job_id, 0)]
    assert queue_depth(spreads.redis, ["base"]) == 1
    assert sorted(requeue_windows(spreads, set(), celery, 0, "base")) == [(job_id, 1)]
    assert queue_depth(spreads.redis, ["base"]) == 2
    assert requeue_windows(spreads, set(), celery, 0, "base") == []  # each sent once

