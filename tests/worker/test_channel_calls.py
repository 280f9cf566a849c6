"""A call diarized by channel (issue 21), with the real base model on real speech: the left
party's sentence runs on after the right party's turn, and each channel's speech is decoded run
together, so before its segments were cut where their words pause, one segment of the left
party's spanned the right party's whole turn (bench/diarization_bench.py's `call`). And a call
without a pause, its channels decoded as one stream: each word is taken back to its own
channel and time across the join (`worker/channel_join.py`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conversations import Turn, build_back_to_back, build_call

from shared.config import Settings
from shared.errors import QuotaExceeded, VerbatimError
from shared.schemas import JobOptions, Transcript
from worker.diarization import transcribe
from worker.model import get_model
from worker.transcriber import PartlyDone

DATA = Path(__file__).resolve().parent.parent / "data"
# LJ Speech's reader on the left (public domain), LibriSpeech's 2412 on the right (CC BY 4.0);
# LJ001-0008 ends the sentence LJ001-0007 begins.
CALL = [(0, "LJ001-0007.flac"), (1, "2412-153948-0000.flac"), (0, "LJ001-0008.flac")]
# The right party opens the call and the left answers without a pause, to its very end: in the
# stream, the left channel's last word comes just before the join and the right's first word
# just after it.
BACK_TO_BACK = [(1, "2412-153948-0000.flac"), (0, "LJ001-0005.flac")]


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Turn], Path]:
    path = tmp_path_factory.mktemp("call") / "call.flac"
    return build_call([(channel, DATA / name) for channel, name in CALL], path), path


@pytest.fixture(scope="module")
def charged(built: tuple[list[Turn], Path]) -> tuple[list[float], Transcript]:
    """The call transcribed, with every charge of the key's daily audio (seconds so far)."""
    seconds: list[float] = []

    def on_decoded(decoded: float) -> VerbatimError | None:
        seconds.append(decoded)
        return None

    settings = Settings()
    return seconds, transcribe(get_model(settings), built[1], JobOptions(diarize="channels"),
                               settings, lambda _: None, on_decoded=on_decoded)


@pytest.fixture(scope="module")
def call(built: tuple[list[Turn], Path], charged: tuple[list[float], Transcript]
         ) -> tuple[list[Turn], Transcript]:
    return built[0], charged[1]


def test_no_segment_of_one_party_spans_the_others_turn(
        call: tuple[list[Turn], Transcript]) -> None:
    turns, transcript = call
    right = turns[1]
    left = [s for s in transcript.segments if s.speaker == "S1"]
    assert left, transcript.segments
    # At most the edges overlap: a segment reaches the end of the speech it is in.
    assert all(min(s.end, right.end) - max(s.start, right.start) < 0.5 for s in left), left


def test_each_party_keeps_its_own_words_in_order(
        call: tuple[list[Turn], Transcript]) -> None:
    turns, transcript = call
    said = {who: words(" ".join(s.text for s in transcript.segments if s.speaker == who))
            for who in ("S1", "S2")}
    assert "has never been surpassed" in said["S1"], said
    assert "if the reader will excuse me" in said["S2"], said
    assert "reader" not in said["S1"], said
    assert "surpassed" not in said["S2"], said
    last = [s for s in transcript.segments if "surpassed" in words(s.text)]
    assert len(last) == 1, last
    assert last[0].start >= turns[1].end - 0.5, last
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))



def test_the_key_is_charged_once_for_the_calls_seconds(
        charged: tuple[list[float], Transcript]) -> None:
    seconds, transcript = charged
    assert seconds == sorted(seconds), seconds
    assert seconds[-1] == pytest.approx(transcript.duration, abs=0.01), seconds


def test_a_call_stopped_by_the_keys_day_keeps_the_first_channels_words(
        built: tuple[list[Turn], Path]) -> None:
    turns, path = built
    settings = Settings()

    def spent(seconds: float) -> VerbatimError | None:
        return QuotaExceeded("The key's day is spent.", 60)

    with pytest.raises(PartlyDone) as stopped:
        transcribe(get_model(settings), path, JobOptions(diarize="channels"), settings,
                   lambda _: None, on_decoded=spent)
    kept = stopped.value.transcript
    assert stopped.value.error.code == "quota_exceeded"
    assert {s.speaker for s in kept.segments} == {"S1"}, kept.segments
    assert "has never been surpassed" in words(kept.text), kept.text
    last = [s for s in kept.segments if "surpassed" in words(s.text)]
    assert last[0].start >= turns[1].end - 0.5, last

def test_a_party_starting_where_the_other_stops_keeps_its_words_and_times(
        tmp_path: Path) -> None:
    turns = build_back_to_back([(channel, DATA / name) for channel, name in BACK_TO_BACK],
                               tmp_path / "call.flac")
    settings = Settings()
    options = JobOptions(diarize="channels", word_timestamps=True)
    transcript = transcribe(get_model(settings), tmp_path / "call.flac", options, settings,
                            lambda _: None)
    turn = {t.speaker: t for t in turns}
    said = {who: words(" ".join(s.text for s in transcript.segments if s.speaker == who))
            for who in ("S1", "S2")}
    assert "the art of printing" in said["S1"], said
    assert said["S2"].startswith("if the reader will excuse me"), said
    assert "printing" not in said["S2"], said
    assert "reader" not in said["S1"], said
    for segment in transcript.segments:
        own = turn[segment.speaker or ""]
        assert own.start - 0.5 <= segment.start <= segment.end <= own.end + 0.5, segment
        for word in segment.words or []:
            assert word.speaker == segment.speaker, segment
            assert own.start - 0.5 <= word.start <= word.end <= own.end + 0.5, (word, own)
    first = transcript.segments[0]
    assert (first.speaker, first.start) == ("S2", pytest.approx(0.0, abs=0.5)), first
    last = transcript.segments[-1]
    assert (last.speaker, last.end) == ("S1", pytest.approx(turn["S1"].end, abs=0.5)), last
    assert transcript.duration == pytest.approx(turn["S1"].end, abs=0.01)
