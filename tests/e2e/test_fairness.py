"""Fair scheduling with the real worker: one key's deep queue does not hold back another's job.

Key A queues 30 recordings, then key B queues one. New jobs are enqueued at a priority taken
from the submitting key's queued jobs (`shared/state/jobs.py`), and the worker prefetches one
message,
so B's job must start before A's fourth (issue 9).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from support import Process, keyed_client, make_key, submit, wait_for_job

from shared.config import Settings
from shared.queue import make_celery

A_JOBS = 30


def started(job: dict) -> datetime | None:
    return datetime.fromisoformat(job["started_at"]) if job.get("started_at") else None


def test_the_worker_prefetches_one_message_so_priorities_count() -> None:
    assert make_celery(Settings()).conf.worker_prefetch_multiplier == 1


def test_a_single_job_of_one_key_starts_before_the_fourth_of_a_key_with_thirty_queued(
    auth_api: tuple[Process, str], redis_url: str, long_recording: Path
) -> None:
    url = auth_api[1]
    with keyed_client(url, make_key(redis_url, "a")[1]) as a, \
            keyed_client(url, make_key(redis_url, "b")[1]) as b:
        a_jobs = [submit(a, long_recording)["id"] for _ in range(A_JOBS)]
        b_job = wait_for_job(b, submit(b, long_recording)["id"])
        with ThreadPoolExecutor(8) as pool:
            records = list(pool.map(lambda job_id: a.get(f"/v1/jobs/{job_id}").json(), a_jobs))
            list(pool.map(lambda job_id: a.delete(f"/v1/jobs/{job_id}"), a_jobs))  # the rest
    assert b_job["status"] == "completed"
    b_started = started(b_job)
    assert b_started is not None
    a_started = [started(job) for job in records]
    before_b = [when for when in a_started if when is not None and when < b_started]
    assert len(before_b) <= 3, f"{len(before_b)} of A's jobs started before B's"
    fourth = a_started[3]
    assert fourth is None or fourth > b_started
