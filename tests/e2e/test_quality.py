"""Transcripts to trust (issue 11), through the running service with the real base model:
code-switching recordings, no words without speech, cues inside the audio, candidate
languages, Chinese script. The recordings are made at set-up (`tests/synthetic.py`)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx
import jiwer
import opencc
import pytest
from support import DATA, submit, wait_for_job, write_silence
from synthetic import CHINESE, ENGLISH_GERMAN, KOREAN_ENGLISH, noise, spoken, tones

# Measured with the base model on these espeak-ng recordings: English 0.21, German 0.23 (the
# voices are robotic: "The weather was" comes back "But whenever one"); bounds leave margin.
MAX_WER = {"en": 0.4, "de": 0.4}
# The English files of tests/data, with the mode off and on: measured identical.
MAX_WER_CHANGE = 0.01


def words(text: str) -> str:
    return " ".join(jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split())


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(words(reference), words(hypothesis)))


def transcribed(client: httpx.Client, path: Path, **fields: str) -> tuple[dict, dict]:
    """The finished job and its JSON transcript, every cue checked to lie inside the audio."""
    return finished(client, submit(client, path, **fields)["id"])


def finished(client: httpx.Client, job_id: str) -> tuple[dict, dict]:
    """The job once it ends, and its JSON transcript, every cue checked to lie inside the
    audio."""
    job = wait_for_job(client, job_id)
    assert job["status"] == "completed", job
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert_inside(transcript, job["audio_duration"])
    return job, transcript


def assert_inside(transcript: dict, duration: float) -> None:
    """Every segment and word within [0, duration], none before the one it follows."""
    earlier = 0.0
    for segment in transcript["segments"]:
        assert earlier <= segment["start"] <= segment["end"] <= duration + 0.001, segment
        earlier = segment["start"]
        word_start = segment["start"]
        for word in segment["words"] or []:
            assert word_start <= word["start"] <= word["end"] <= segment["end"], word
            word_start = word["start"]


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("quality")


def test_english_then_german_is_transcribed_in_both(client: httpx.Client, audio: Path) -> None:
    job, transcript = transcribed(client, spoken(ENGLISH_GERMAN, audio / "en-de.flac"),
                                  multilingual="true", word_timestamps="true")
    assert job["languages"] == ["en", "de"]
    assert {a["language"] for a in job["language_alternatives"]} >= {"en", "de"}
    for _, language, script in ENGLISH_GERMAN:
        said = " ".join(s["text"] for s in transcript["segments"] if s["language"] == language)
        assert wer(script, said) <= MAX_WER[language], (language, said)
    rows = list(csv.DictReader(io.StringIO(
        client.get(f"/v1/jobs/{job['id']}/transcript.tsv").text), delimiter="\t"))
    assert [row["language"] for row in rows] == [s["language"] for s in transcript["segments"]]


def test_without_the_mode_the_german_is_not_german(client: httpx.Client, audio: Path) -> None:
    """The failure the mode exists for: one language for the whole recording."""
    _, transcript = transcribed(client, spoken(ENGLISH_GERMAN, audio / "en-de-plain.flac"),
                                multilingual="false")
    assert {s["language"] for s in transcript["segments"]} == {"en"}


def test_candidates_ko_en_yield_only_korean_or_english(client: httpx.Client, audio: Path) -> None:
    job, transcript = transcribed(client, spoken(KOREAN_ENGLISH, audio / "ko-en.flac"),
                                  language="ko,en", multilingual="true")
    assert set(job["languages"]) <= {"ko", "en"}
    assert {a["language"] for a in job["language_alternatives"]} <= {"ko", "en"}
    assert sum(a["probability"] for a in job["language_alternatives"]) == pytest.approx(1, 0.01)
    assert {s["language"] for s in transcript["segments"]} <= {"ko", "en"}
    _, _, english = KOREAN_ENGLISH[1]
    assert wer(english, transcript["segments"][-1]["text"]) <= MAX_WER["en"]


@pytest.mark.parametrize("seconds", [5, 30, 120])
def test_silence_without_vad_gives_nothing(
    client: httpx.Client, audio: Path, seconds: int
) -> None:
    job, transcript = transcribed(
        client, write_silence(audio / f"silence-{seconds}.wav", seconds), vad_filter="false")
    assert transcript["segments"] == []
    assert transcript["text"] == ""
    assert job["audio_duration"] == pytest.approx(seconds)


@pytest.mark.parametrize("make", [noise, tones])
def test_noise_and_tones_without_vad_give_nothing(
    client: httpx.Client, audio: Path, make: object
) -> None:
    path = make(audio / f"{make.__name__}.flac", 30)  # type: ignore[operator]
    for multilingual in ("false", "true"):
        _, transcript = transcribed(client, path, vad_filter="false", multilingual=multilingual)
        assert transcript["segments"] == []


def test_speech_without_vad_is_still_transcribed(client: httpx.Client) -> None:
    reference = json.loads((DATA / "manifest.json").read_text())[0]
    _, transcript = transcribed(client, DATA / reference["file"], vad_filter="false")
    assert wer(reference["reference"], transcript["text"]) <= 0.1


# One recording of each English speaker in tests/data; bench/quality_bench.py scores every file.
SPEAKERS = ("jfk.flac", "1089-134686-0000.flac", "LJ001-0001.flac")


def test_english_files_keep_their_wer_in_the_mode(client: httpx.Client) -> None:
    """A recording of each speaker, mode off and on: the same words, every cue inside."""
    manifest = [entry for entry in json.loads((DATA / "manifest.json").read_text())
                if entry["file"] in SPEAKERS]
    assert len(manifest) == len(SPEAKERS)
    queued = {(entry["file"], mode): submit(client, DATA / entry["file"], multilingual=mode)["id"]
              for entry in manifest for mode in ("false", "true")}
    for entry in manifest:
        scores = {}
        for mode in ("false", "true"):
            job, transcript = finished(client, queued[entry["file"], mode])
            assert job["languages"] == ["en"]
            scores[mode] = wer(entry["reference"], transcript["text"])
        assert scores["true"] <= scores["false"] + MAX_WER_CHANGE, (entry["file"], scores)


@pytest.mark.parametrize(("script", "config"), [("simplified", "s2t"),
                                                ("traditional", "t2s")])
def test_chinese_comes_back_in_the_requested_script(
    client: httpx.Client, audio: Path, script: str, config: str
) -> None:
    """espeak-ng's Chinese is too robotic for the base model to get the words right, but
    what it hears it writes in Chinese characters, in the script asked for: converting the
    text to the script asked for changes nothing, and to the other one changes something."""
    path = audio / "zh.flac"
    if not path.exists():
        spoken(CHINESE, path)
    # At temperature 0 only: the fallback samples at higher temperatures when this robotic
    # speech fails faster-whisper's thresholds, and a sample may read as "0.0.0..." instead.
    job, transcript = transcribed(client, path, language="zh", script=script, temperature="0")
    text = transcript["text"]
    assert job["languages"] == ["zh"]
    assert any("\u4e00" <= c <= "\u9fff" for c in text), text
    assert opencc.OpenCC("t2s" if script == "simplified" else "s2t").convert(text) == text
    assert opencc.OpenCC(config).convert(text) != text
