"""Transcript downloads never stall the API (issue 26, item 11): while 2-hour transcripts are
downloaded in every format at once, `/healthz` keeps answering. A real API process; the
transcript record is written straight into the session's Redis; the downloads are curl
processes, so that nothing in this process holds up the probe but the API itself."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import srt
from support import start_api

from shared.schemas import JobOptions, JobStatus, Segment, Transcript, Word
from shared.state.jobs import JobStore, new_job_id

HOURS = 2
DOWNLOADS = ["txt", "json", "srt", "vtt", "tsv", "ass", "srt?preset=broadcast",
             "vtt?preset=broadcast", "ass?preset=broadcast"]
ROOT = Path(__file__).resolve().parents[2]
WORDS = "the quick brown fox jumps over the lazy dog and then runs far away home".split()


def long_transcript(hours: float) -> Transcript:
    """A segment of 14 timed words every 5 s."""
    segments = []
    for index in range(int(hours * 3600 / 5)):
        start = index * 5.0
        words = [Word(word=" " + w, start=start + i * 0.33, end=start + i * 0.33 + 0.3,
                      probability=0.9) for i, w in enumerate(WORDS)]
        segments.append(Segment(id=index, start=start, end=start + 4.6, words=words,
                                text="".join(w.word for w in words)))
    return Transcript(language="en", duration=hours * 3600, text="", segments=segments)


@pytest.fixture(scope="module")
def long_job(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[str, str]]:
    """An API of its own and a completed job with a 2-hour transcript: (API URL, job id)."""
    store = JobStore.from_url(service_env["VERBATIM_REDIS_URL"])
    job_id = new_job_id()
    store.create(job_id, "talk.flac", JobOptions(), HOURS * 3600.0, Path("/nonexistent"))
    store.update(job_id, status=JobStatus.processing, started_at=datetime.now(UTC))
    store.complete(job_id, long_transcript(HOURS), 3600)
    api, url = start_api(service_env, tmp_path_factory.mktemp("render") / "api.log")
    yield url, job_id
    api.stop()
    store.delete(job_id)


def healthz_latencies(url: str, until: float) -> list[float]:
    latencies = []
    with httpx.Client(timeout=60) as http:
        while time.monotonic() < until:
            began = time.perf_counter()
            assert http.get(f"{url}/healthz").status_code == 200
            latencies.append(time.perf_counter() - began)
            time.sleep(0.02)
    return latencies


def test_healthz_answers_while_long_transcripts_render(long_job: tuple[str, str]) -> None:
    url, job_id = long_job
    base = f"{url}/v1/jobs/{job_id}/transcript."
    with httpx.Client(timeout=120) as http:
        cues = list(srt.parse(http.get(f"{base}srt?preset=broadcast").text))
        assert cues[-1].end.total_seconds() > (HOURS - 0.1) * 3600  # it is the whole 2 hours
        began = time.perf_counter()
        http.get(f"{base}vtt?preset=broadcast").raise_for_status()
        one_render = time.perf_counter() - began
    curls = [subprocess.Popen(["curl", "-sf", "-o", "/dev/null", "--max-time", "300",
                               f"{base}{fmt}"]) for fmt in DOWNLOADS * 2]
    try:
        time.sleep(0.5)  # every download has been asked for
        latencies = healthz_latencies(url, time.monotonic() + 3 * one_render)
        rendering = [curl.poll() for curl in curls].count(None)
    finally:
        codes = [curl.wait(300) for curl in curls]
    assert codes == [0] * len(curls)  # every format downloaded
    assert rendering > 0  # downloads were still running while /healthz was asked
    # On the event loop, one render held `/healthz` for its whole length (most of its
    # answers took about one render); now they take a small part of one.
    p90 = statistics.quantiles(latencies, n=10)[-1]
    assert p90 < one_render / 4, (p90, one_render, sorted(latencies)[-5:])


def test_a_render_process_starts_without_the_web_stack() -> None:
    """A render process imports `api/rendering.py` and what it renders with, not FastAPI nor
    Celery: anyio stops an idle one after 5 minutes, so the first download after a quiet spell
    waits for a new one to start."""
    check = ("import sys, api.rendering; print(sorted({'fastapi', 'uvicorn', 'api.errors', "
             "'api.main', 'celery', 'kombu', 'shared.queue'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
