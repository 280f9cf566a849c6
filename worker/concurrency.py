"""How many jobs a worker runs at once, and how many cores each job's model may use.

A CPU worker runs one job per core by default, up to `CPU_JOBS` copies of the model, each on one
thread: on 2 cores two one-thread jobs decode 1.9x the audio of one job on both, and one job is
no faster on two threads than on one (docs/guides/throughput.md). A GPU worker runs one job.
"""

from __future__ import annotations

import os

from shared.config import Settings
from worker import metrics

CPU_JOBS = 4
# Jobs this process's worker runs at once, which share the cores (`share_cores`); set by
# `worker_init`, before the first model load.
_jobs = 1


def share_cores(jobs: int) -> None:
    """Make the model this process loads run on its share of the cores of a worker running
    `jobs` at once, in any pool (`worker_init`, before any load)."""
    global _jobs
    _jobs = jobs


def default_concurrency(settings: Settings) -> int:
    """`worker_concurrency` where set; else one job per core on CPU, up to `CPU_JOBS`, and one
    on a GPU. Runs in a prefork pool's parent: it asks NVML, not CUDA, whether a GPU is there
    (a CUDA driver initialised before a fork is unusable in the children)."""
    if settings.worker_concurrency:
        return settings.worker_concurrency
    gpu = settings.device == "cuda" or (settings.device == "auto" and metrics.gpu_count() > 0)
    if gpu:
        return 1
    return max(1, min(CPU_JOBS, len(os.sched_getaffinity(0))))


def threads_per_job(settings: Settings) -> int:
    """`cpu_threads` where set; with several jobs at once and 0, the cores shared among them
    (CTranslate2 would give each up to 4, oversubscribing a small machine)."""
    if settings.cpu_threads or _jobs == 1:
        return settings.cpu_threads
    return max(1, len(os.sched_getaffinity(0)) // _jobs)
