"""jfk.flac through the HTTP API, a real worker and the real model, checked as a user would."""

from __future__ import annotations

import csv
import io
import json
import string
from pathlib import Path

import httpx
import jiwer
import pytest
import srt
import webvtt
from support import DATA, Process, submit, wait_for_job, write_silence

JFK = DATA / "jfk.flac"
REFERENCES = {e["file"]: e["reference"] for e in json.loads((DATA / "manifest.json").read_text())}


def normalise(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


@pytest.fixture(scope="module")
def jfk_job(client: httpx.Client) -> dict:
    created = submit(client, JFK)
    assert created["status"] == "queued"
    seen: list[float] = []
    job = wait_for_job(client, created["id"], seen)
    job["progress_seen"] = seen
    return job


def download(client: httpx.Client, job_id: str, fmt: str) -> httpx.Response:
    response = client.get(f"/v1/jobs/{job_id}/transcript.{fmt}")
    assert response.status_code == 200, response.text
    return response


def test_submit_answers_202_with_location(client: httpx.Client) -> None:
    with JFK.open("rb") as f:
        response = client.post("/v1/jobs", files={"file": ("jfk.flac", f)})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["filename"] == "jfk.flac"
    assert job["audio_duration"] == pytest.approx(11.0, abs=0.1)
    wait_for_job(client, job["id"])


def test_jfk_words_match_reference(jfk_job: dict, client: httpx.Client) -> None:
    assert jfk_job["status"] == "completed", jfk_job
    assert jfk_job["language"] == "en"
    transcript = download(client, jfk_job["id"], "json").json()
    assert wer(REFERENCES["jfk.flac"], transcript["text"]) <= 0.1
    assert transcript["duration"] == pytest.approx(11.0, abs=0.1)


def test_progress_reaches_one(jfk_job: dict) -> None:
    seen = jfk_job["progress_seen"]
    assert seen[-1] == 1.0
    assert seen == sorted(seen), "progress went backwards"
    assert jfk_job["started_at"] <= jfk_job["finished_at"]


def test_srt_parses_with_cues_inside_the_audio(jfk_job: dict, client: httpx.Client) -> None:
    response = download(client, jfk_job["id"], "srt")
    assert response.headers["content-type"].startswith("application/x-subrip")
    assert 'filename="jfk.srt"' in response.headers["content-disposition"]
    cues = list(srt.parse(response.text))
    assert cues
    for cue in cues:
        assert 0 <= cue.start.total_seconds() < cue.end.total_seconds() <= 11.0 + 0.01
    assert wer(REFERENCES["jfk.flac"], " ".join(c.content for c in cues)) <= 0.1


def test_vtt_parses_with_cues_inside_the_audio(jfk_job: dict, client: httpx.Client) -> None:
    response = download(client, jfk_job["id"], "vtt")
    assert response.headers["content-type"].startswith("text/vtt")
    cues = webvtt.from_string(response.text)
    assert len(cues) > 0
    for cue in cues:
        assert 0 <= cue.start_in_seconds < cue.end_in_seconds <= 11.0 + 0.01
    assert wer(REFERENCES["jfk.flac"], " ".join(c.text for c in cues)) <= 0.1


def test_json_txt_tsv_agree(jfk_job: dict, client: httpx.Client) -> None:
    transcript = download(client, jfk_job["id"], "json").json()
    assert client.get(f"/v1/jobs/{jfk_job['id']}/transcript").json() == transcript
    segments = transcript["segments"]
    txt = download(client, jfk_job["id"], "txt").text
    assert txt.splitlines() == [s["text"].strip() for s in segments]
    tsv = download(client, jfk_job["id"], "tsv").text
    rows = list(csv.reader(io.StringIO(tsv), delimiter="\t"))
    assert rows[0] == ["start", "end", "text"]
    assert [(int(r[0]), int(r[1]), r[2]) for r in rows[1:]] == [
        (round(s["start"] * 1000), round(s["end"] * 1000), s["text"].strip()) for s in segments
    ]
    assert normalise(" ".join(r[2] for r in rows[1:])) == normalise(transcript["text"])


def test_word_timestamps_on_request(client: httpx.Client) -> None:
    job = wait_for_job(client, submit(client, JFK, word_timestamps="true")["id"])
    transcript = download(client, job["id"], "json").json()
    words = [w for s in transcript["segments"] for w in s["words"]]
    assert normalise(" ".join(w["word"] for w in words)) == normalise(transcript["text"])
    assert all(0 <= w["start"] <= w["end"] <= 11.0 for w in words)


def test_silence_gives_an_empty_transcript(client: httpx.Client, tmp_path: Path) -> None:
    job = wait_for_job(client, submit(client, write_silence(tmp_path / "silence.wav", 60))["id"])
    assert job["status"] == "completed", job
    assert job["progress"] == 1.0
    transcript = download(client, job["id"], "json").json()
    assert transcript["text"] == ""
    assert transcript["segments"] == []
    assert download(client, job["id"], "srt").text == ""


@pytest.mark.parametrize("batch_size", ["1", "4"])
def test_sequential_and_batched_decoding_hear_the_words(
    client: httpx.Client, batch_size: str
) -> None:
    files = [DATA / f"LJ001-000{i}.flac" for i in (1, 3)]
    texts = [download(client, wait_for_job(client, submit(client, path, batch_size=batch_size)
                                           ["id"])["id"], "json").json()["text"]
             for path in files]
    assert wer(" ".join(REFERENCES[path.name] for path in files), " ".join(texts)) <= 0.1


def test_model_loaded_once_per_worker_process(client: httpx.Client, worker: Process) -> None:
    files = [DATA / "1089-134686-0000.flac", DATA / "1089-134686-0001.flac", JFK]
    jobs = [submit(client, path) for path in files]
    texts = [download(client, wait_for_job(client, j["id"])["id"], "json").json()["text"]
             for j in jobs]
    references = " ".join(REFERENCES[path.name] for path in files)
    assert wer(references, " ".join(texts)) <= 0.15
    records = worker.records()
    # Each process loads each model it is asked for once (tests before may have used tiny.en).
    loads = [(r["pid"], r["model"]) for r in records if r["message"] == "model loaded"]
    jobs_done = sum(r.get("event") == "completed" for r in records)
    assert loads, worker.output()[-2000:]
    assert len(loads) == len(set(loads)), f"a process loaded a model twice: {loads}"
    assert jobs_done > len(loads) >= 1
