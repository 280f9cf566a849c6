"""Jobs counted by status from the per-status indexes, through transitions, deletion and expiry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.errors import DecodeError
from shared.schemas import JobOptions, JobStatus, Transcript
from shared.state.jobs import JobStore, utcnow
from shared.state.requeue import Deliveries

EMPTY = Transcript(language="en", duration=1.0, text="", segments=[])


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    store = JobStore.from_url(redis_url.rsplit("/", 1)[0] + "/4")  # a database of its own
    store.redis.flushdb()
    yield store
    store.redis.flushdb()
    store.redis.close()


def counts(store: JobStore) -> list[int]:
    found = store.count_by_status()
    return [found[s] for s in (JobStatus.queued, JobStatus.processing, JobStatus.completed,
                               JobStatus.failed)]


def test_counts_follow_transitions_deletion_and_expiry(store: JobStore) -> None:
    ids = [f"{i:032x}" for i in range(4)]
    for job_id in ids:
        store.create(job_id, "a.flac", JobOptions(), 1.0, Path("/nowhere"))
    assert counts(store) == [4, 0, 0, 0]
    store.update(ids[0], status=JobStatus.processing)
    store.update(ids[0], progress=0.5)  # not a transition
    store.update(ids[1], status=JobStatus.processing)
    assert counts(store) == [2, 2, 0, 0]
    store.complete(ids[0], EMPTY, ttl=1)
    store.fail(ids[1], DecodeError("bad"), ttl=3600)
    store.delete(ids[2])
    assert counts(store) == [1, 0, 1, 1]
    # A write to a deleted job changes nothing, the index included.
    assert not store.complete(ids[2], EMPTY, ttl=3600)
    assert counts(store) == [1, 0, 1, 1]
    deadline = time.monotonic() + 5
    while store.redis.exists(store.job_key(ids[0])):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert counts(store) == [1, 0, 0, 1]
    assert store.redis.zcard(store.index_key(JobStatus.completed)) == 0  # pruned


def wait_for_expiry(store: JobStore, job_id: str) -> None:
    deadline = time.monotonic() + 5
    while store.redis.exists(store.job_key(job_id)):
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_finishing_a_job_prunes_expired_ids_without_a_count(store: JobStore) -> None:
    """Where nothing scrapes the metrics, the index still stays bounded."""
    first, second = f"{1:032x}", f"{2:032x}"
    for job_id in (first, second):
        store.create(job_id, "a.flac", JobOptions(), 1.0, Path("/nowhere"))
    store.complete(first, EMPTY, ttl=1)
    wait_for_expiry(store, first)
    store.complete(second, EMPTY, ttl=3600)
    completed = store.redis.zrange(store.index_key(JobStatus.completed), 0, -1)
    assert completed == [second.encode()]


def test_a_status_written_to_an_expiring_record_leaves_the_index_with_it(
    store: JobStore,
) -> None:
    job_id = f"{3:032x}"
    store.create(job_id, "a.flac", JobOptions(), 1.0, Path("/nowhere"))
    store.complete(job_id, EMPTY, ttl=1)
    store.update(job_id, status=JobStatus.processing)  # e.g. a late, racing redelivery
    assert counts(store) == [0, 1, 0, 0]
    wait_for_expiry(store, job_id)
    assert counts(store) == [0, 0, 0, 0]


def test_a_job_is_requeued_only_while_still_run_by_the_gone_worker(store: JobStore) -> None:
    job_id = f"{4:032x}"
    store.create(job_id, "a.flac", JobOptions(), 1.0, Path("/nowhere"))
    deliveries = Deliveries(store)
    assert not deliveries.requeue_if_run_by(job_id, "host:1")  # queued: nothing to do
    store.update(job_id, status=JobStatus.processing, started_at=utcnow(), worker="host:1")
    [(running_id, worker, _)] = deliveries.running()
    assert (running_id, worker) == (job_id, "host:1")
    assert not deliveries.requeue_if_run_by(job_id, "host:2")  # another worker's job
    assert deliveries.requeue_if_run_by(job_id, "host:1") == 1  # the job's next generation
    assert not deliveries.requeue_if_run_by(job_id, "host:1")  # a second finder loses
    job = store.get(job_id)
    assert job is not None
    assert (job.status, job.progress) == (JobStatus.queued, 0.0)
    assert counts(store) == [1, 0, 0, 0]
    assert deliveries.running() == []
