"""Speech the model passes over is decoded again alone (issue 21), with the real base model
on a real conversation: with word timings, faster-whisper ends the decoding of this one after
its fourth turn, and the fifth, a whole sentence VAD hears, came back without a word
(bench/diarization_bench.py's `c4b`)."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from conversations import Turn, build, in_data

from shared.config import Settings
from shared.schemas import JobOptions, Transcript
from worker.model import get_model
from worker.transcriber import transcribe

# Four readers: LibriSpeech 1089, 1272 and 2412 (CC BY 4.0), LJ Speech (public domain).
FOUR = [("1089", "1089-134686-0000.flac"), ("1272", "1272-128104-0000.flac"),
        ("2412", "2412-153948-0000.flac"), ("LJ", "LJ001-0015.flac"),
        ("1089", "1089-134691-0001.flac")]
# The last turn's words (LibriSpeech's transcript).
LAST = "for a full hour he had paced up and down waiting but he could wait no longer"


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Turn], Transcript]:
    path = tmp_path_factory.mktemp("missed") / "four.flac"
    turns = build(in_data(FOUR), path)
    settings = Settings()
    options = JobOptions(word_timestamps=True)
    return turns, transcribe(get_model(settings), path, options, settings, lambda _: None)


def test_the_turn_the_model_passed_over_is_transcribed(
        conversation: tuple[list[Turn], Transcript]) -> None:
    turns, transcript = conversation
    assert LAST in words(transcript.text), transcript.text
    last = [s for s in transcript.segments if LAST[:20] in words(s.text)]
    assert len(last) == 1, transcript.segments  # once: the model does not read it twice
    assert turns[-1].start - 0.5 <= last[0].start < last[0].end <= turns[-1].end + 0.5
    assert all(w.start >= last[0].start for w in last[0].words or []), last[0]


def test_its_segments_take_their_place_in_order(
        conversation: tuple[list[Turn], Transcript]) -> None:
    _, transcript = conversation
    segments = transcript.segments
    assert [s.id for s in segments] == list(range(len(segments)))
    assert all(a.end <= b.start for a, b in pairwise(segments))
    assert "the forms of printed letters" in words(transcript.text)


def test_a_recording_with_no_speech_passed_over_is_decoded_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A single reader: every region has its segment, so nothing is decoded again."""
    path = tmp_path / "one.flac"
    build(in_data([("1089", "1089-134686-0000.flac")]), path)
    settings = Settings()
    model, calls = get_model(settings), []
    decode = model.transcribe

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return decode(*args, **kwargs)

    monkeypatch.setattr(model, "transcribe", counted)
    transcript = transcribe(model, path, JobOptions(word_timestamps=True, language="en"),
                            settings, lambda _: None)
    assert "stew for dinner" in words(transcript.text)
    assert len(calls) == 1
