"""`verbatim serve` stopped during a job: the job goes back on the queue and is not stranded."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_client import events_until_end, pcm16, started_session, stop, ws_url
from support import (
    DATA,
    JOB_TIMEOUT_SECONDS,
    TINY_MODEL,
    Process,
    answers_ok,
    spawn,
    submit,
    wait_for_job,
    wait_until,
)

from cli.serve import STOP_MARGIN_SECONDS
from shared.localredis import free_port

GRACE_SECONDS = 1


# A recording past 20 s spread over windows of at most 20 s: the passage makes two.
SPREAD = {"VERBATIM_SPLIT_SECONDS": "20", "VERBATIM_SPREAD_WINDOW_SECONDS": "20"}


def start_serve(data_dir: Path, log: Path, pool: str,
                extra: dict[str, str] | None = None) -> tuple[Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERBATIM_")} | {
        "VERBATIM_DATA_DIR": str(data_dir),  # its private Redis keeps its data there
        "VERBATIM_WORKER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "VERBATIM_WORKER_METRICS_PORT": str(free_port()),
        "VERBATIM_PROGRESS_INTERVAL_SECONDS": "0",
        "VERBATIM_WORKER_POOL": pool,
    } | TINY_MODEL | (extra or {})
    process = spawn([sys.executable, "-m", "cli.main", "serve", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers_ok(f"{url}/readyz"), "verbatim serve readiness", process, 90)
    return process, url


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@pytest.mark.parametrize(("pool", "spread"), [("prefork", False), ("threads", False),
                                             ("threads", True)])
def test_a_job_interrupted_by_stopping_serve_runs_again_on_the_next_start(
    tmp_path: Path, long_recording: Path, processes: list[Process], pool: str, spread: bool
) -> None:
    extra = SPREAD if spread else {}
    first, url = start_serve(tmp_path / "data", tmp_path / "serve-1.log", pool, extra)
    processes.append(first)
    with httpx.Client(base_url=url, timeout=30) as http:
        job_id = submit(http, long_recording)["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        # Stopped as soon as it runs: its decoding outlasts the shutdown grace however fast
        # the machine (once its first segments are in, the rest may not).
        while http.get(f"/v1/jobs/{job_id}").json()["status"] != "processing":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)

    first.popen.send_signal(signal.SIGTERM)
    assert first.popen.wait(timeout=GRACE_SECONDS + STOP_MARGIN_SECONDS + 30) == 0, (
        first.output()[-3000:])
    assert "did not stop in time" not in first.output()

    second, url = start_serve(tmp_path / "data", tmp_path / "serve-2.log", pool, extra)
    processes.append(second)
    with httpx.Client(base_url=url, timeout=30) as http:
        job = wait_for_job(http, job_id)
        # A spread job stopped while its windows ran has only those windows delivered again
        # (the job's own task, its planning, ended): attempt 1, or 2 if stopped while planning.
        assert job["status"] == "completed", job
        assert job["attempts"] in ((1, 2) if spread else (2,)), job
        text = http.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()
        assert "printing" in text
        # Both windows' words: the first sentence's and the last's.
        assert "arts and crafts" in text, text
        assert "bible" in text, text
        if spread:
            return
        if pool == "prefork":  # unless told: one pool process per core, up to 4, each ready
            cores = min(len(os.sched_getaffinity(0)), 4)
            wait_until(lambda: len(http.get("/readyz").json()["workers"]) == cores,
                       f"{cores} ready pool processes", second, 90)
        # `serve` alone serves live sessions too: its live worker takes them.
        with started_session(ws_url(url), timeout=90) as (ws, _):
            ws.send(pcm16(DATA / "jfk.flac")[:64000])  # the first 2 s, at once
            stop(ws)
            done = events_until_end(ws)[-1][1]
        assert done["type"] == "done", done
        live = http.get(done["links"]["txt"]).text.lower()
    assert "fellow" in live
