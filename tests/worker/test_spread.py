"""Long recordings spread over workers: each window a task any worker takes, stitched back in
order with no word lost or doubled at a cut; a killed pool process costs only its window; a
deleted job stops every window; progress never goes down; a call diarized by channel is cut
channel by channel and merged with one speaker per channel."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import httpx
import jiwer
import numpy as np
import pytest
import redis
from conversations import THREE, assert_turns_labelled, build, in_data
from faster_whisper import decode_audio
from support import (
    DATA,
    Process,
    keyed_client,
    kill_whole_worker,
    lying_matroska,
    make_key,
    pool_children,
    start_api,
    start_auth_api,
    start_worker,
    submit,
    wait_for_job,
    write_audio,
    write_wav,
)
from synthetic import ENGLISH_GERMAN, melody, speech

from shared.localredis import LocalRedis
from shared.state.spread_plans import plan_key

# Recordings past 30 s are spread, in windows of at most 30 s: the test recording (about 64 s)
# makes three. The cutting, stitching and requeueing are the model's own whatever the model:
# its jobs run on `tiny.en` (half `base`'s cost, `support.TINY_MODEL`) unless a test asks for
# `base`, as those of languages and voices do.
SPREAD = {
    "VERBATIM_MODEL": "tiny.en",
    "VERBATIM_SPLIT_SECONDS": "30",
    "VERBATIM_WINDOW_SECONDS": "30",
    "VERBATIM_WINDOW_SEARCH_SECONDS": "10",
    "VERBATIM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "VERBATIM_HEARTBEAT_TIMEOUT_SECONDS": "4",
}
PARTS = ["LJ001-0001", "LJ001-0003", "LJ001-0005", "LJ001-0007", "1089-134686-0000", "jfk",
         "1089-134686-0001"]
# A call's turns as (channel, utterance): LJ Speech's reader on the left, LibriSpeech's 1089 on
# the right; the other channel silent meanwhile.
CALL = [(0, "LJ001-0001"), (1, "1089-134686-0000"), (0, "LJ001-0003"), (1, "1089-134686-0001")]


@dataclass
class Stack:
    http: httpx.Client
    redis: redis.Redis
    workers: list[Process]
    data_dir: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def spread(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A service of its own with two workers that spread recordings past 30 s."""
    logs = tmp_path_factory.mktemp("spread")
    with LocalRedis(logs / "redis") as server:
        env = service_env | SPREAD | {
            "VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(logs / "data"),
        }
        api, url = start_api(env, logs / "api.log")
        workers = [start_worker(env, logs / f"worker-{n}.log", name=f"spread{n}")
                   for n in (1, 2)]
        client = redis.Redis.from_url(server.url)
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                yield Stack(http, client, workers, logs / "data", env)
        finally:
            client.close()
            for worker in workers:
                worker.stop()
            api.stop()


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 64 s of read speech (LJ Speech, LibriSpeech, JFK), half a second between parts."""
    gap = np.zeros(8000, np.float32)
    parts = [piece for name in PARTS for piece in (decode_audio(str(DATA / f"{name}.flac")), gap)]
    return write_wav(tmp_path_factory.mktemp("audio") / "long.wav", np.concatenate(parts))


@pytest.fixture(scope="module")
def unsplit(client: httpx.Client, recording: Path) -> dict:
    """The recording's transcript decoded in one task (the session's worker, default settings
    but the spread stack's model)."""
    job = wait_for_job(client, submit(client, recording, model=SPREAD["VERBATIM_MODEL"])["id"])
    assert job["status"] == "completed", job
    return client.get(f"/v1/jobs/{job['id']}/transcript.json").json()


def words(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split())


def letters(text: str) -> str:
    return "".join(char for char in words(text) if char.isalnum())


def assert_same_words(expected: str, found: str) -> None:
    """No word lost or doubled: compared letter by letter, spaces aside, a lost or doubled
    word shows as a run of missing or extra letters; a word heard differently near a cut
    (without the prompt of the window before it) as a few substitutions, and a word written
    in two ("woodcutters", "wood cutters") changes the count of words, not of letters."""
    diff = jiwer.process_characters(letters(expected), letters(found))
    assert diff.deletions + diff.insertions <= 3, (expected, found)
    assert diff.substitutions <= 8, (expected, found)
    assert abs(len(words(expected).split()) - len(words(found).split())) <= 4, (expected, found)


def running_window(stack: Stack, job_id: str, timeout: float = 60) -> tuple[int, int]:
    """(window, pid of the pool process) of one of the job's two long windows once it has run
    for a second (of several: faster-whisper yields a 30-second stretch's segments at its end,
    so a decoded count would show only as the window ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, mark in stack.redis.hgetall(f"{plan_key(job_id)}:running").items():
            worker, _, at_ms = mark.decode().rpartition("|")
            if int(index) < 2 and time.time() - int(at_ms) / 1000 > 1:
                return int(index), int(worker.rpartition(":")[2])
        time.sleep(0.02)
    pytest.fail(f"no window of job {job_id} was seen decoding")


def no_trace(stack: Stack, job_id: str) -> bool:
    """The job's window files and plan are gone."""
    keys = [plan_key(job_id) + suffix for suffix in ("", ":results", ":decoded", ":running")]
    return not stack.redis.exists(*keys) and not (stack.data_dir / "windows" / job_id).exists()


def window_lines(worker: Process, job_id: str) -> list[dict]:
    return [r for r in worker.records() if r.get("job_id") == job_id and "window" in r]


def test_a_spread_recording_keeps_every_word_once_in_order(
    spread: Stack, unsplit: dict, recording: Path
) -> None:
    seen: list[float] = []
    job = wait_for_job(spread.http, submit(spread.http, recording)["id"], seen)
    assert job["status"] == "completed", job
    assert job["language"] == "en"
    cut = spread.http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert cut["duration"] == pytest.approx(unsplit["duration"], abs=0.01)
    assert_same_words(unsplit["text"], cut["text"])
    ends = [(s["start"], s["end"]) for s in cut["segments"]]
    assert all(a <= b for a, b in ends)
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(ends))
    assert 0 <= ends[0][0]
    assert ends[-1][1] <= cut["duration"]
    assert [s["id"] for s in cut["segments"]] == list(range(len(ends)))
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    # Three windows, taken by both workers; nothing of them is left behind.
    ran = [{r["window"] for r in window_lines(w, job["id"])} for w in spread.workers]
    assert set().union(*ran) == {0, 1, 2}, ran
    assert all(ran), ran
    assert no_trace(spread, job["id"])
    srt = spread.http.get(f"/v1/jobs/{job['id']}/transcript.srt")
    assert srt.status_code == 200
    assert "-->" in srt.text


def test_windows_of_silence_before_the_first_word_are_sent_once_it_is_heard(
    spread: Stack, tmp_path: Path
) -> None:
    """The windows cut before the recording's language is known wait for it, then go out in
    their places: the speech after 65 s of silence comes back at its own time, once."""
    silence = 65 * 16000
    speech = decode_audio(str(DATA / "jfk.flac"))
    path = write_wav(tmp_path / "late.wav", np.concatenate([np.zeros(silence, np.float32),
                                                            speech]))
    job = wait_for_job(spread.http, submit(spread.http, path)["id"])
    assert job["status"] == "completed", job
    assert job["language"] == "en"
    cut = spread.http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert "ask not what your country" in words(cut["text"]), cut["text"]
    assert words(cut["text"]).count("fellow") == 1, cut["text"]
    assert cut["segments"][0]["start"] >= 64, cut["segments"][0]
    ran = set().union(*({r["window"] for r in window_lines(w, job["id"])}
                        for w in spread.workers))
    assert ran == {0, 1, 2}, ran
    assert no_trace(spread, job["id"])


def test_a_spread_conversation_keeps_one_label_per_speaker_across_windows(
    spread: Stack, tmp_path: Path
) -> None:
    """Issue 21: each window embeds its speech; the join clusters all of it once."""
    turns = build(in_data(THREE), tmp_path / "three.flac")  # 44 s: two windows of 30 s at most
    job = wait_for_job(spread.http, submit(spread.http, tmp_path / "three.flac", model="base",
                                           diarize="voices", word_timestamps="true")["id"])
    assert job["status"] == "completed", job
    ran = set().union(*({r["window"] for r in window_lines(w, job["id"])}
                        for w in spread.workers))
    assert ran == {0, 1}
    assert len(job["speakers"]) == 3
    assert_turns_labelled(spread.http.get(f"/v1/jobs/{job['id']}/transcript.json").json(),
                          turns)


def test_a_killed_pool_process_costs_only_its_window(
    spread: Stack, unsplit: dict, recording: Path
) -> None:
    job_id = submit(spread.http, recording)["id"]
    index, pid = running_window(spread, job_id)
    os.kill(pid, signal.SIGKILL)
    seen: list[float] = []
    job = wait_for_job(spread.http, job_id, seen)
    assert job["status"] == "completed", job
    assert seen == sorted(seen)
    cut = spread.http.get(f"/v1/jobs/{job_id}/transcript.json").json()
    assert_same_words(unsplit["text"], cut["text"])
    # The killed window was delivered again; the others ran once each.
    starts = [r["window"] for w in spread.workers for r in window_lines(w, job_id)
              if r.get("event") == "window_started"]
    counts = Counter(starts)
    assert counts[index] >= 2, starts
    assert all(counts[i] == 1 for i in {0, 1, 2} - {index}), starts
    assert no_trace(spread, job_id)


def test_deleting_a_spread_job_stops_every_window(spread: Stack, recording: Path) -> None:
    job_id = submit(spread.http, recording)["id"]
    running_window(spread, job_id)
    assert spread.http.delete(f"/v1/jobs/{job_id}").status_code == 204
    deadline = time.monotonic() + 30
    while not no_trace(spread, job_id):
        assert time.monotonic() < deadline, "the windows of a deleted job went on"
        time.sleep(0.1)
    assert spread.http.get(f"/v1/jobs/{job_id}").status_code == 404
    # No window of it decodes any more: the workers take the next job at once.
    job = wait_for_job(spread.http, submit(spread.http, DATA / "jfk.flac")["id"])
    assert job["status"] == "completed", job
    lines = [r for w in spread.workers for r in w.records() if r.get("job_id") == job_id]
    assert not any(r.get("event") == "completed" for r in lines)
    assert json.dumps(lines).count('"deleted"') + json.dumps(lines).count('"skipped"') >= 1


def test_each_window_of_a_code_switching_recording_hears_its_own_languages(
    spread: Stack, tmp_path: Path
) -> None:
    """English read speech, then a German sentence (espeak-ng): about 45 s, so two windows.
    In the code-switching mode the language is not detected once for all windows: each finds
    its own, and the German comes back as German, after the English, on the recording's clock."""
    gap = np.zeros(8000, np.int16)
    english = [(decode_audio(str(DATA / f"LJ001-000{i}.flac")) * 32767).astype(np.int16)
               for i in (1, 3, 5, 7)]
    _, _, german = ENGLISH_GERMAN[1]
    parts = [piece for part in english for piece in (part, gap)]
    path = write_audio(tmp_path / "en-de.flac",
                       np.concatenate([*parts, speech("de", german, tmp_path), gap]))
    job = wait_for_job(spread.http, submit(spread.http, path, model="base",
                                           multilingual="true")["id"])
    assert job["status"] == "completed", job
    assert job["languages"] == ["en", "de"], job
    cut = spread.http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    said = {language: " ".join(s["text"] for s in cut["segments"] if s["language"] == language)
            for language in ("en", "de")}
    assert "printing" in words(said["en"])
    assert jiwer.wer(words(german), words(said["de"])) <= 0.4, said["de"]
    starts = [s["start"] for s in cut["segments"]]
    assert starts == sorted(starts)
    ran = [{r["window"] for r in window_lines(w, job["id"])} for w in spread.workers]
    assert set().union(*ran) == {0, 1}, ran


def test_the_window_of_a_whole_worker_gone_is_requeued_alone(
    spread: Stack, unsplit: dict, recording: Path
) -> None:
    """Run last: it leaves the module's stack with one worker."""
    job_id = submit(spread.http, recording)["id"]
    _, pid = running_window(spread, job_id)
    (gone,) = [w for w in spread.workers if pid in pool_children(w.popen.pid)]
    kill_whole_worker(gone)
    job = wait_for_job(spread.http, job_id)
    assert job["status"] == "completed", job
    cut = spread.http.get(f"/v1/jobs/{job_id}/transcript.json").json()
    assert_same_words(unsplit["text"], cut["text"])
    lines = [r for w in spread.workers for r in w.records() if r.get("job_id") == job_id]
    assert [r.get("event") for r in lines].count("spread") == 1  # the job was not planned again
    assert any(r.get("event") == "requeued" and "window" in r for r in lines)
    assert no_trace(spread, job_id)


def test_each_window_charges_its_own_audio_and_the_job_keeps_what_was_decoded(
    spread: Stack, tmp_path: Path
) -> None:
    """Issue 26, item 2: a spread recording was charged its declared length only (35 s here,
    for 64 s of speech); its windows now charge what they decode, and the window that spends
    the key's day (40 s) ends the job with `quota_exceeded`, the windows done so far kept."""
    upload = lying_matroska(tmp_path / "long.mkv", seconds=64, declared=35)
    _, token = make_key(spread.env["VERBATIM_REDIS_URL"], "spread-quota",
                        max_audio_hours_per_day=40 / 3600)
    api, url = start_auth_api(spread.env, tmp_path / "auth-api.log")
    try:
        with keyed_client(url, token) as http:
            job = wait_for_job(http, submit(http, upload, language="en")["id"])
            assert (job["status"], job["error"]["code"]) == ("failed", "quota_exceeded"), job
            transcript = http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
            with upload.open("rb") as f:
                refused = http.post("/v1/jobs", files={"file": (upload.name, f)})
            assert refused.json()["error"]["code"] == "quota_exceeded"
    finally:
        api.stop()
    # The first window (JFK's words) is decoded whichever window spends the day: one charged
    # before it is within the reservation, and a window that spends it is decoded all the same.
    assert "ask not what your country can do for you" in transcript["text"].lower()


def test_a_spread_recording_gathers_the_sounds_of_every_window(
    spread: Stack, tmp_path: Path
) -> None:
    """JFK, 20 s of a tune, an audience twice (38 s, two windows): one music sound across the
    window cut, then the audience (issue 25; the classifier also hears half-second sirens in
    this audience, as bench/sounds_bench.py shows)."""
    def pcm(name: str) -> np.ndarray:
        return (decode_audio(str(DATA / name)) * 32767).astype(np.int16)

    audience = pcm("applause.flac")
    mix = np.concatenate([pcm("jfk.flac"), melody(20.0), audience, audience])
    path = write_wav(tmp_path / "sounds.wav", mix.astype(np.float32) / 32767)
    job = wait_for_job(spread.http, submit(spread.http, path, sounds="true")["id"])
    assert job["status"] == "completed", job
    transcript = spread.http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert "ask not what your country can do for you" in transcript["text"]
    heard = [(s["label"], round(s["start"]), round(s["end"])) for s in transcript["sounds"]]
    assert heard[0][0] == "music", heard
    assert heard[0][1] == 11
    assert heard[0][2] >= 30
    assert "cheering" in [label for label, start, _ in heard[1:] if start >= 31]


def write_call(path: Path) -> float:
    """`CALL` (about 35 s), half a second between turns, as 16 kHz stereo FLAC: its seconds."""
    gap = np.zeros(8000, np.float32)
    channels: list[list[np.ndarray]] = [[], []]
    for channel, name in CALL:
        said = decode_audio(str(DATA / f"{name}.flac"))
        channels[channel] += [said, gap]
        channels[1 - channel] += [np.zeros_like(said), gap]
    pcm = (np.stack([np.concatenate(c) for c in channels]) * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=16000, layout="stereo")
        frame = av.AudioFrame.from_ndarray(pcm.T.reshape(1, -1).copy(), format="s16",
                                           layout="stereo")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return pcm.shape[1] / 16000


def test_a_spread_call_keeps_one_speaker_per_channel_on_the_recordings_clock(
    spread: Stack, tmp_path: Path
) -> None:
    """Issue 21: each channel is cut into windows of its own, the join merges the channels."""
    seconds = write_call(tmp_path / "call.flac")  # two windows of each channel
    seen: list[float] = []
    job = wait_for_job(spread.http, submit(spread.http, tmp_path / "call.flac",
                                           diarize="channels",
                                           channel_names="agent,customer")["id"], seen)
    assert job["status"] == "completed", job
    ran = set().union(*({r["window"] for r in window_lines(w, job["id"])}
                        for w in spread.workers))
    assert len(ran) >= 4, ran
    assert ran == set(range(len(ran))), ran
    assert [(s["label"], s["name"], s["channel"], s["turns"]) for s in job["speakers"]] == [
        ("S1", "agent", 0, 2), ("S2", "customer", 1, 2)]
    transcript = spread.http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert transcript["duration"] == pytest.approx(seconds, abs=0.05)  # not once per channel
    said = {who: words(" ".join(s["text"] for s in transcript["segments"]
                                if s["speaker"] == who)) for who in ("S1", "S2")}
    assert "printing" in said["S1"]
    assert "chinese" in said["S1"]
    assert "stew for dinner" in said["S2"]
    assert "belly" in said["S2"]
    assert not {"stew", "belly"} & set(said["S1"].split())
    assert not {"printing", "chinese"} & set(said["S2"].split())
    starts = [s["start"] for s in transcript["segments"]]
    assert starts == sorted(starts)
    assert [s["id"] for s in transcript["segments"]] == list(range(len(starts)))
    assert seen == sorted(seen)
    assert seen[-1] == 1.0
    assert no_trace(spread, job["id"])
