"""A smoke run of bench/capacity_bench.py: one short level of each phase against the real API,
Redis and a real Celery worker whose decoding is a fixed wait; its figures must be there and
sane (jobs accepted and done, none refused, status reads answered)."""

from __future__ import annotations

import re
import subprocess
import sys

from support import ROOT, debian_tool


def test_capacity_bench_smoke_run() -> None:
    debian_tool("wrk")
    result = subprocess.run(
        [sys.executable, "bench/capacity_bench.py", "--smoke", "--api-processes", "1",
         "--worker-threads", "4", "--decode-seconds", "0.05"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-3000:]
    assert "decoding step is a FIXED WAIT" in out
    accepted = re.search(r"c=2\s+(\d+) jobs/s  refused\s+(\d+)", out)
    assert accepted is not None, out
    assert int(accepted.group(1)) > 0
    assert accepted.group(2) == "0"
    drained = re.search(r"the accept phase's (\d+) queued jobs drained", out)
    assert drained is not None, out
    assert int(drained.group(1)) > 0
    life = re.search(r"(\d+) jobs/s done .* Redis per job:\s+([\d.]+) commands,\s+([\d.]+) KiB",
                     out)
    assert life is not None, out
    assert int(life.group(1)) > 0
    assert float(life.group(2)) > 10
    assert float(life.group(3)) > 1
    reads = re.search(r"(\d+) reads/s", out)
    assert reads is not None, out
    assert int(reads.group(1)) > 0
