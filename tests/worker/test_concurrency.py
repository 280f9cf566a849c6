"""How many jobs a worker runs at once unless told, and the cores each of them gets."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shared.config import Settings
from worker import model

CORES = len(os.sched_getaffinity(0))


@pytest.fixture
def jobs_at_once() -> Iterator[None]:
    yield
    model.share_cores(1)


def test_a_cpu_worker_runs_one_job_per_core_up_to_four() -> None:
    assert model.default_concurrency(Settings(device="cpu")) == min(CORES, model.CPU_JOBS)
    assert model.default_concurrency(Settings(device="cpu", worker_concurrency=3)) == 3


@pytest.mark.usefixtures("jobs_at_once")
def test_jobs_at_once_share_the_cores_unless_cpu_threads_is_set() -> None:
    model.share_cores(1)
    assert model.threads_per_job(Settings(cpu_threads=0)) == 0  # CTranslate2 chooses
    model.share_cores(2)
    assert model.threads_per_job(Settings(cpu_threads=0)) == max(1, CORES // 2)
    assert model.threads_per_job(Settings(cpu_threads=3)) == 3
    model.share_cores(CORES * 2)
    assert model.threads_per_job(Settings(cpu_threads=0)) == 1
