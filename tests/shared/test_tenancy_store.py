"""Keys, owners' active jobs, priorities and job lists in a real Redis (no API, no worker)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.errors import DecodeError, QuotaExceeded, TooManyActiveJobs
from shared.localredis import LocalRedis
from shared.priorities import LOWEST_PRIORITY, NEW_JOB_PRIORITY
from shared.schemas import JobOptions, JobStatus, Transcript
from shared.state.allowance import AudioAllowance
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import KeyLimits, KeyStore, token_hash
from shared.state.listing import list_jobs, prune_list
from shared.state.requeue import Deliveries

EMPTY = Transcript(language="en", duration=1.0, text="", segments=[])
NOWHERE = Path("/nowhere")


@pytest.fixture
def store(redis_url: str) -> Iterator[JobStore]:
    store = JobStore.from_url(redis_url.rsplit("/", 1)[0] + "/5")  # a database of its own
    store.redis.flushdb()
    yield store
    store.redis.flushdb()
    store.redis.close()


def create(store: JobStore, owner: str | None, **limits: float) -> tuple[str, int]:
    job_id = new_job_id()
    _, priority = store.create(job_id, "a.flac", JobOptions(), 60.0, NOWHERE, owner,
                               KeyLimits.model_validate(limits))
    return job_id, priority


def test_a_key_is_stored_as_a_hash_found_by_its_token_and_refused_once_revoked(
    store: JobStore,
) -> None:
    keys = KeyStore(store.redis)
    key, token = keys.create("team", KeyLimits(rate_per_minute=5))
    assert token.startswith("vb_")
    assert len(token) > 40
    assert keys.find(token) == key
    assert keys.find(token + "x") is None
    assert keys.find("not-a-key") is None
    dump = b" ".join(store.redis.keys("*") + [store.redis.get(k) or b"" for k in
                                              store.redis.keys("verbatim:apikey:*")])
    assert token.encode() not in dump
    assert token_hash(token).encode() in dump
    assert keys.revoke(key.id)
    assert not keys.revoke("0" * 16)
    assert keys.find(token) is None
    assert [(k.id, k.revoked) for k in keys.list()] == [(key.id, True)]


def test_active_jobs_leave_the_count_when_they_complete_fail_or_are_deleted(
    store: JobStore,
) -> None:
    ids = [create(store, "a")[0] for _ in range(4)]
    assert store.active_count("a") == 4
    assert store.active_count("b") == 0
    store.update(ids[0], status=JobStatus.processing)
    assert store.active_count("a") == 4  # processing is still active
    store.complete(ids[0], EMPTY, ttl=60)
    store.fail(ids[1], DecodeError("bad"), ttl=60)
    store.delete(ids[2])
    assert store.active_count("a") == 1


def test_the_active_limit_is_checked_with_the_creation_and_forgets_vanished_records(
    store: JobStore,
) -> None:
    first, _ = create(store, "a", max_active_jobs=2)
    create(store, "a", max_active_jobs=2)
    with pytest.raises(TooManyActiveJobs):
        create(store, "a", max_active_jobs=2)
    create(store, "b", max_active_jobs=2)  # another key has its own count
    store.redis.delete(store.job_key(first))  # a record gone by any other way
    create(store, "a", max_active_jobs=2)
    assert store.active_count("a") == 2


def test_the_audio_quota_counts_seconds_per_day_and_refuses_what_would_pass_it(
    store: JobStore,
) -> None:
    hours = 150 / 3600  # each job here is 60 s
    create(store, "a", max_audio_hours_per_day=hours)
    create(store, "a", max_audio_hours_per_day=hours)
    with pytest.raises(QuotaExceeded) as refused:
        create(store, "a", max_audio_hours_per_day=hours)
    assert 0 < refused.value.retry_after <= 24 * 3600


def test_priorities_follow_the_queue_depth_and_never_overtake_the_owners_own_jobs(
    store: JobStore,
) -> None:
    made = [create(store, "a") for _ in range(12)]
    assert [priority for _, priority in made] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9]
    assert create(store, "b")[1] == NEW_JOB_PRIORITY  # a key with nothing queued goes first
    # Ten of a's jobs start; two are still queued at 9, so a stays at 9 (FIFO for a itself).
    for job_id, _ in made[:10]:
        store.update(job_id, status=JobStatus.processing)
    assert create(store, "a")[1] == LOWEST_PRIORITY
    # Jobs made while auth is off keep today's single priority.
    assert {create(store, None)[1] for _ in range(5)} == {NEW_JOB_PRIORITY}


def test_the_list_is_newest_first_paged_filtered_and_skips_expired_records(
    store: JobStore,
) -> None:
    ids = [create(store, "a")[0] for _ in range(7)]
    create(store, "b")
    store.complete(ids[1], EMPTY, ttl=60)
    store.complete(ids[4], EMPTY, ttl=60)
    seen, cursor, pages = [], None, 0
    while True:
        jobs, cursor = list_jobs(store, "a", 3, cursor)
        seen += [job.id for job in jobs]
        pages += 1
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3
    done, _ = list_jobs(store, "a", 10, status=JobStatus.completed)
    assert [job.id for job in done] == [ids[4], ids[1]]
    store.redis.delete(store.job_key(ids[3]))  # as if its record expired
    jobs, _ = list_jobs(store, "a", 10)
    assert ids[3] not in [job.id for job in jobs]
    assert store.redis.zcard(store.owner_key("a", "jobs")) == 6  # the stale entry was pruned
    store.delete(ids[6])
    assert [job.id for job in list_jobs(store, "a", 1)[0]] == [ids[5]]


def test_creating_a_job_prunes_stale_entries_at_the_old_end(store: JobStore) -> None:
    ids = [create(store, None)[0] for _ in range(3)]
    for job_id in ids[:2]:
        store.redis.delete(store.job_key(job_id))
    assert prune_list(store, None) == 2
    assert [job.id for job in list_jobs(store, None, 10)[0]] == [ids[2]]


def test_requeued_and_finished_jobs_keep_the_owners_queue_in_step(store: JobStore) -> None:
    made = [create(store, "a")[0] for _ in range(3)]
    store.update(made[0], status=JobStatus.processing, worker="w")
    assert store.redis.zcard(store.owner_key("a", "queued")) == 2
    assert Deliveries(store).requeue_if_run_by(made[0], "w") == 1
    assert store.redis.zcard(store.owner_key("a", "queued")) == 3
    store.complete(made[1], EMPTY, ttl=60)
    store.delete(made[2])
    assert store.redis.zrange(store.owner_key("a", "queued"), 0, -1) == [made[0].encode()]


def command_usec(store: JobStore) -> tuple[int, int]:
    """The calls to Lua scripts so far and the microseconds Redis spent in them."""
    stats = store.redis.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return int(stats["calls"]), int(stats["usec"])


def creation_usec(store: JobStore, owner: str, times: int) -> float:
    """Redis's own time per creation of a job of `owner`, over `times` creations."""
    calls, usec = command_usec(store)
    for _ in range(times):
        create(store, owner, max_active_jobs=100_000)
    after_calls, after_usec = command_usec(store)
    assert after_calls - calls == times
    return (after_usec - usec) / times


@pytest.fixture
def private_store(tmp_path: Path) -> Iterator[JobStore]:
    """A job store on a redis-server of its own: INFO commandstats counts every client's
    scripts, and the session's workers run theirs on the shared server at any moment."""
    with LocalRedis(tmp_path / "redis") as server:
        store = JobStore.from_url(server.url)
        yield store
        store.redis.close()


def test_creating_a_job_costs_the_same_with_twenty_thousand_queued(
    private_store: JobStore,
) -> None:
    """Issue 26, item 10: the creation script read every queued job of the key. Both owners'
    creations are timed by Redis itself (INFO commandstats), side by side, so the machine's load
    falls on both alike."""
    store = private_store
    for owner, depth in (("shallow", 10), ("deep", 20_000)):
        ids = [new_job_id() for _ in range(depth)]
        for first in range(0, depth, 1000):
            with store.redis.pipeline(transaction=False) as pipe:
                for job_id in ids[first:first + 1000]:
                    pipe.hset(store.job_key(job_id), mapping={
                        "status": '"queued"', "priority": "9", "owner": f'"{owner}"'})
                    pipe.sadd(store.owner_key(owner, "active"), job_id)
                    pipe.zadd(store.owner_key(owner, "queued"), {job_id: 9})
                pipe.execute()
    create(store, "shallow", max_active_jobs=100_000)  # loads the script into the server
    shallow, deep = [], []
    for _ in range(5):
        shallow.append(creation_usec(store, "shallow", 20))
        deep.append(creation_usec(store, "deep", 20))
    assert create(store, "deep")[1] == LOWEST_PRIORITY  # the deep queue still counts
    assert store.active_count("deep") == 20_000 + 101
    # Scanning 20,000 records took ~100 ms a creation (~2,000 times the shallow key's cost).
    assert sorted(deep)[2] < 5 * sorted(shallow)[2], (shallow, deep)


def day_count(store: JobStore, owner: str) -> float:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    return float(store.redis.get(store.owner_key(owner, f"audio:{day}")) or 0)


def test_decoded_audio_past_the_reservation_is_charged_once_and_refused_past_the_day(
    store: JobStore,
) -> None:
    keys, allowance = KeyStore(store.redis), AudioAllowance(store.redis)
    key, _ = keys.create("a", KeyLimits(max_audio_hours_per_day=150 / 3600))
    job_id, _ = create(store, key.id, max_audio_hours_per_day=150 / 3600)  # reserves 60 s
    assert day_count(store, key.id) == 60
    allowance.charge(job_id, 50)
    allowance.charge(job_id, 60)
    assert day_count(store, key.id) == 60  # within what creation reserved
    allowance.charge(job_id, 100)
    allowance.charge(job_id, 80)  # a redelivered job decoding again: nothing more
    assert day_count(store, key.id) == 100
    with pytest.raises(QuotaExceeded) as refused:
        allowance.charge(job_id, 160)
    assert refused.value.code == "quota_exceeded"
    assert day_count(store, key.id) == 160
    with pytest.raises(QuotaExceeded):  # the day is spent: even a job of no declared length
        store.create(new_job_id(), "live", JobOptions(), None, NOWHERE, key.id, key.limits)


def test_windows_charge_their_own_audio_and_a_url_reserves_its_probed_length(
    store: JobStore,
) -> None:
    keys, allowance = KeyStore(store.redis), AudioAllowance(store.redis)
    key, _ = keys.create("a", KeyLimits(max_audio_hours_per_day=100 / 3600))
    spread, _ = create(store, key.id, max_audio_hours_per_day=100 / 3600)  # reserves 60 s
    for index in range(3):
        allowance.charge(spread, 30, part=str(index))  # 90 s decoded: 30 past the reservation
    assert day_count(store, key.id) == 90
    url = new_job_id()
    store.create(url, "u", JobOptions(), None, NOWHERE, key.id, key.limits,
                 status=JobStatus.fetching)
    with pytest.raises(QuotaExceeded):
        allowance.reserve(url, 20)
    assert day_count(store, key.id) == 90
    allowance.reserve(url, 10)
    allowance.charge(url, 10)
    assert day_count(store, key.id) == 100
    unowned, _ = create(store, None)
    allowance.charge(unowned, 1000)  # auth off: nothing to count
