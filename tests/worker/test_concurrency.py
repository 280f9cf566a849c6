"""How many jobs a worker runs at once unless told, and the cores each of them gets."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.config import Settings
from worker import concurrency

CORES = len(os.sched_getaffinity(0))


@pytest.fixture
def jobs_at_once() -> Iterator[None]:
    yield
    concurrency.share_cores(1)


def test_a_cpu_worker_runs_one_job_per_core_up_to_four() -> None:
    expected = min(CORES, concurrency.CPU_JOBS)
    assert concurrency.default_concurrency(Settings(device="cpu")) == expected
    assert concurrency.default_concurrency(Settings(device="cpu", worker_concurrency=3)) == 3


@pytest.mark.usefixtures("jobs_at_once")
def test_jobs_at_once_share_the_cores_unless_cpu_threads_is_set() -> None:
    concurrency.share_cores(1)
    assert concurrency.threads_per_job(Settings(cpu_threads=0)) == 0  # CTranslate2 chooses
    concurrency.share_cores(2)
    assert concurrency.threads_per_job(Settings(cpu_threads=0)) == max(1, CORES // 2)
    assert concurrency.threads_per_job(Settings(cpu_threads=3)) == 3
    concurrency.share_cores(CORES * 2)
    assert concurrency.threads_per_job(Settings(cpu_threads=0)) == 1
