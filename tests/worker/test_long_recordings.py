"""Recordings longer than a window: cut at pauses, decoded window by window, stitched back;
held to the duration limit as decoded, whatever the container declares; and transcribed in
memory that does not grow with their length."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jiwer
import numpy as np
import pytest
from support import (
    DATA,
    Process,
    lying_matroska,
    peak_rss_bytes,
    pool_children,
    reset_peak_rss,
    start_api,
    start_worker,
    submit,
    wait_for_job,
    write_audio,
)

from shared.localredis import LocalRedis

LIMIT_SECONDS = 60
SMALL_WINDOWS = {
    "VERBATIM_WINDOW_SECONDS": "30",
    "VERBATIM_WINDOW_SEARCH_SECONDS": "10",
    "VERBATIM_MAX_AUDIO_SECONDS": str(LIMIT_SECONDS),
}
# Whole-file decoding of an hour holds 230 MB of float samples alone, and more in copies;
# holding its silent windows' samples until a language is heard held 115 MB (140-150 MiB grown).
# Window by window it grows by 25-30 MiB.
MEMORY_BOUND_BYTES = 64 * 1024**2


@pytest.fixture(scope="module")
def windowed(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A service of its own whose windows are 30 s and whose recordings may last 60 s."""
    logs = tmp_path_factory.mktemp("windowed")
    with LocalRedis(logs / "redis") as server:
        env = service_env | SMALL_WINDOWS | {
            "VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(logs / "data"),
        }
        api, url = start_api(env, logs / "api.log")
        worker = start_worker(env, logs / "worker.log", name="windowed")
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                yield http
        finally:
            worker.stop()
            api.stop()


def words(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split())


def letters(text: str) -> str:
    return "".join(char for char in words(text) if char.isalnum())


def test_a_split_recording_keeps_every_word_once_in_order(
    windowed: httpx.Client, client: httpx.Client, long_recording: Path
) -> None:
    seen: list[float] = []
    split = wait_for_job(windowed, submit(windowed, long_recording)["id"], seen)
    whole = wait_for_job(client, submit(client, long_recording)["id"])
    assert split["status"] == whole["status"] == "completed"
    cut = windowed.get(f"/v1/jobs/{split['id']}/transcript.json").json()
    uncut = client.get(f"/v1/jobs/{whole['id']}/transcript.json").json()
    assert cut["duration"] > 30  # more than one window
    # Decoding may hear a word differently near a cut ("woodblocks" / "wood blocks"), but never
    # drops or repeats one there: compared letter by letter, spaces aside, a lost or doubled
    # word would show as a run of missing or extra letters.
    diff = jiwer.process_characters(letters(uncut["text"]), letters(cut["text"]))
    assert diff.deletions + diff.insertions <= 2, (uncut["text"], cut["text"])
    assert diff.substitutions <= 6, (uncut["text"], cut["text"])
    assert abs(len(words(uncut["text"]).split()) - len(words(cut["text"]).split())) <= 2
    ends = [(s["start"], s["end"]) for s in cut["segments"]]
    assert all(a <= b for a, b in ends)
    assert all(prev[1] <= nxt[0] + 0.01 for prev, nxt in itertools.pairwise(ends))
    assert 0 <= ends[0][0]
    assert ends[-1][1] <= cut["duration"]
    assert [s["id"] for s in cut["segments"]] == list(range(len(ends)))
    assert seen == sorted(seen)


def test_a_recording_longer_than_declared_fails_at_the_limit(
    windowed: httpx.Client, tmp_path: Path
) -> None:
    upload = lying_matroska(tmp_path / "lying.mkv", seconds=2 * LIMIT_SECONDS, declared=5)
    created = submit(windowed, upload)
    assert created["audio_duration"] == pytest.approx(5, abs=0.1)  # the probe was misled
    job = wait_for_job(windowed, created["id"])
    assert (job["status"], job["error"]["code"]) == ("failed", "duration_exceeded"), job
    assert f"{LIMIT_SECONDS} s" in job["error"]["message"]


def test_a_long_recording_needs_no_more_memory_than_a_window(
    client: httpx.Client, worker: Process, tmp_path: Path
) -> None:
    hour = write_audio(tmp_path / "hour.flac", np.zeros(3600 * 16000, np.int16))
    (pool,) = pool_children(worker.popen.pid)
    wait_for_job(client, submit(client, DATA / "jfk.flac")["id"])  # model and VAD warm
    time.sleep(0.5)
    reset_peak_rss(pool)
    before = peak_rss_bytes(pool)
    job = wait_for_job(client, submit(client, hour)["id"])
    assert job["status"] == "completed", job
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert transcript["duration"] == pytest.approx(3600)
    assert transcript["segments"] == []
    grown = peak_rss_bytes(pool) - before
    assert grown < MEMORY_BOUND_BYTES, f"the pool process grew by {grown / 2**20:.0f} MiB"
