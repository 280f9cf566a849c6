"""Claims of media URL fetches (`courier/shares.py`) on a real Redis: a key's share, stale
messages, and a share freed by a fetch that ended or whose I/O worker was requeued away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from courier.shares import BUSY, GONE, STALE, FetchClaims
from shared.schemas import JobOptions, JobStatus
from shared.state.jobs import JobStore, new_job_id
from shared.state.requeue import Deliveries


@pytest.fixture
def claims(redis_url: str) -> Iterator[FetchClaims]:
    store = JobStore.from_url(redis_url.rsplit("/", 1)[0] + "/9")  # a database of its own
    store.redis.flushdb()
    yield FetchClaims(store, share=2)
    store.redis.flushdb()
    store.redis.close()


def fetching(claims: FetchClaims, owner: str = "k1") -> str:
    job_id = new_job_id()
    claims.store.create(job_id, "a.flac", JobOptions(), None, Path("/nowhere"), owner=owner,
                        status=JobStatus.fetching)
    return job_id


def test_a_key_holds_at_most_its_share(claims: FetchClaims) -> None:
    first, second, third = (fetching(claims) for _ in range(3))
    other = fetching(claims, owner="k2")
    assert claims.claim(first, 0, "io:1") == 1
    assert claims.claim(second, 0, "io:1") == 1
    assert claims.claim(third, 0, "io:1") == BUSY
    assert claims.claim(other, 0, "io:1") == 1  # another key's share is its own
    claims.release(first, "io:1")
    assert claims.claim(third, 0, "io:1") == 1


def test_a_share_held_by_a_requeued_fetch_is_freed(claims: FetchClaims) -> None:
    first, second, third = (fetching(claims) for _ in range(3))
    claims.claim(first, 0, "io:dead")
    claims.claim(second, 0, "io:dead")
    generation = Deliveries.of_fetches(claims.store).requeue_if_run_by(first, "io:dead")
    assert generation == 1
    assert claims.claim(third, 0, "io:2") == 1
    assert claims.claim(first, 0, "io:2") == STALE  # the dead worker's own message
    claims.release(third, "io:2")
    assert claims.claim(first, generation, "io:2") == 2  # its second attempt


def test_a_job_no_longer_fetching_is_not_fetched(claims: FetchClaims) -> None:
    job_id = fetching(claims)
    claims.store.update(job_id, status=JobStatus.queued)
    assert claims.claim(job_id, 0, "io:1") == GONE
