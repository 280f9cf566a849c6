"""The worker's /metrics adds up its pool processes' files, and forgets the in-flight jobs of
a process that died without saying so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from support import ROOT

from worker import metrics

# A pool process that counts a failure, starts a job and dies mid-job (as under SIGKILL: no
# worker_process_shutdown, no cleanup).
DIES_MID_JOB = """
import os
from worker import metrics
metrics.job_failed("decode_error")
with metrics.in_flight():
    os._exit(0)
"""


def samples(registry: object) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()  # type: ignore[attr-defined]
        for s in family.samples
    }


def test_a_dead_process_keeps_its_counts_but_not_its_job_in_flight(tmp_path: Path) -> None:
    env = os.environ | {metrics.ENV: str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", DIES_MID_JOB], env=env, cwd=ROOT, check=True)
    assert len(list(tmp_path.glob("gauge_livesum_*.db"))) == 2
    found = samples(metrics.registry(tmp_path))
    assert found[("verbatim_worker_jobs_failed_total", (("code", "decode_error"),))] == 2
    assert found[("verbatim_worker_jobs_failed_total", (("code", "too_many_attempts"),))] == 0
    assert found.get(("verbatim_worker_jobs_in_flight", ()), 0) == 0
    assert not list(tmp_path.glob("gauge_livesum_*.db"))


def test_gpu_memory_is_reported_per_device() -> None:
    """NVML itself needs a GPU; this checks what is made of its answers."""
    memory = {0: SimpleNamespace(used=3 << 30, total=80 << 30),
              1: SimpleNamespace(used=1 << 30, total=80 << 30)}
    nvml = SimpleNamespace(
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetMemoryInfo=lambda handle: memory[handle],
    )
    found = samples(metrics._GpuMemory(nvml, 2))
    assert found[("verbatim_worker_gpu_memory_bytes", (("gpu", "1"),))] == 1 << 30
    assert found[("verbatim_worker_gpu_memory_capacity_bytes", (("gpu", "0"),))] == 80 << 30
