"""Received marks, generations and requeues (`shared/state/requeue.py`) on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import JobStore
from shared.state.requeue import STALE, Deliveries


@pytest.fixture
def deliveries(redis_url: str) -> Iterator[Deliveries]:
    store = JobStore.from_url(redis_url.rsplit("/", 1)[0] + "/5")  # a database of its own
    store.redis.flushdb()
    yield Deliveries(store)
    store.redis.flushdb()
    store.redis.close()


def create(deliveries: Deliveries, number: int) -> str:
    job_id = f"{number:032x}"
    deliveries.store.create(job_id, "a.flac", JobOptions(), 1.0, Path("/nowhere"))
    return job_id


def test_a_received_job_is_marked_until_it_starts(deliveries: Deliveries) -> None:
    job_id = create(deliveries, 1)
    assert deliveries.mark_received(job_id, "host:10")
    [(found, node, _, _)] = deliveries.received()
    assert (found, node) == (job_id, "host:10")
    assert deliveries.begin_attempt(job_id, 0) == 1
    assert deliveries.received() == []


def test_only_a_waiting_job_is_marked(deliveries: Deliveries) -> None:
    job_id = create(deliveries, 2)
    deliveries.store.update(job_id, status=JobStatus.processing)
    assert not deliveries.mark_received(job_id, "host:10")
    assert not deliveries.mark_received(f"{99:032x}", "host:10")  # no such job
    assert deliveries.received() == []


def test_a_received_job_is_requeued_once_under_a_new_generation(deliveries: Deliveries) -> None:
    job_id = create(deliveries, 3)
    deliveries.mark_received(job_id, "host:10")
    [(_, _, _, mark)] = deliveries.received()
    assert deliveries.requeue_if_received_by(job_id, mark) == 1
    assert deliveries.requeue_if_received_by(job_id, mark) == 0  # a second finder loses
    assert deliveries.received() == []
    # The old message is stale; the new one runs.
    assert deliveries.begin_attempt(job_id, 0) == STALE
    assert deliveries.begin_attempt(job_id, 1) == 1
    assert deliveries.store.get(job_id).attempts == 1  # type: ignore[union-attr]


def test_a_mark_of_a_job_that_started_meanwhile_is_dropped(deliveries: Deliveries) -> None:
    job_id = create(deliveries, 4)
    deliveries.mark_received(job_id, "host:10")
    [(_, _, _, mark)] = deliveries.received()
    deliveries.store.update(job_id, status=JobStatus.processing)
    assert deliveries.requeue_if_received_by(job_id, mark) == 0
    assert deliveries.received() == []


def test_deleting_a_job_drops_its_mark(deliveries: Deliveries) -> None:
    job_id = create(deliveries, 5)
    deliveries.mark_received(job_id, "host:10")
    deliveries.store.delete(job_id)
    assert deliveries.received() == []
    assert deliveries.begin_attempt(job_id, 0) is None


def test_a_delivery_ended_by_a_store_outage_is_given_back_a_bounded_number_of_times(
    deliveries: Deliveries,
) -> None:
    job_id = create(deliveries, 40)
    assert deliveries.begin_attempt(job_id, 0) == 1
    assert deliveries.give_back_attempt(job_id, most=2)
    assert deliveries.begin_attempt(job_id, 0) == 1  # the outage's delivery did not count
    assert deliveries.give_back_attempt(job_id, most=2)
    assert deliveries.begin_attempt(job_id, 0) == 1
    assert not deliveries.give_back_attempt(job_id, most=2)  # past the bound: it counts
    assert deliveries.begin_attempt(job_id, 0) == 2
    assert deliveries.store.get(job_id).attempts == 2  # type: ignore[union-attr]
    assert not deliveries.give_back_attempt(f"{99:032x}")  # no such job
    assert not deliveries.store.redis.exists(deliveries.store.job_key(f"{99:032x}"))


def test_a_job_its_worker_holds_is_put_back_by_that_worker_once(deliveries: Deliveries) -> None:
    """`requeue_if_held`: a task that lost Redis puts its running job back itself."""
    job_id = create(deliveries, 50)
    assert deliveries.begin_attempt(job_id, 0) == 1
    deliveries.store.update(job_id, status=JobStatus.processing, worker="host:11")
    assert deliveries.requeue_if_held(job_id, "host:12", 0) == 0  # another process runs it
    assert deliveries.requeue_if_held(job_id, "host:11", 0) == 1
    assert deliveries.store.get(job_id).status == JobStatus.queued  # type: ignore[union-attr]
    assert deliveries.running() == []
    assert deliveries.store.count_by_status()[JobStatus.queued] == 1
    assert deliveries.requeue_if_held(job_id, "host:11", 0) == 0  # its message is now stale
    assert deliveries.begin_attempt(job_id, 0) == STALE
    assert deliveries.begin_attempt(job_id, 1) == 2


def test_a_job_received_but_not_started_is_put_back_by_its_holder(
    deliveries: Deliveries,
) -> None:
    job_id = create(deliveries, 51)
    deliveries.mark_received(job_id, "host:10")
    assert deliveries.requeue_if_held(job_id, "host:11", 0) == 1
    assert deliveries.received() == []  # no reaper requeues it a second time


def test_a_finished_or_deleted_job_is_not_put_back(deliveries: Deliveries) -> None:
    job_id = create(deliveries, 52)
    deliveries.store.update(job_id, status=JobStatus.processing, worker="host:11")
    deliveries.store.update(job_id, status=JobStatus.completed)
    assert deliveries.requeue_if_held(job_id, "host:11", 0) == 0
    assert deliveries.store.get(job_id).status == JobStatus.completed  # type: ignore[union-attr]
    assert deliveries.requeue_if_held(f"{99:032x}", "host:11", 0) == 0  # no such job
    assert not deliveries.store.redis.exists(deliveries.store.job_key(f"{99:032x}"))
