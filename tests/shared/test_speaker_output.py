"""Speaker labels in the canonical transcript and every download format (issue 21), parsed
with real parsers; pure logic, no model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import pairwise

import pysubs2
import pytest
import srt
import webvtt
from pyannote.core import Annotation
from pyannote.core import Segment as Span
from pydantic import ValidationError

from api.submission import options_error
from shared.output.formatters import render
from shared.output.subtitles import SubtitleOptions
from shared.schemas import Job, JobOptions, JobStatus, Segment, Transcript, Word
from shared.state.job_events import completed_data, segment_data
from shared.state.webhooks import event_body
from shared.turns import parse_renames, speakers_of, split_at_changes, split_at_pauses


def _word(start: float, end: float, text: str, who: str) -> Word:
    return Word(start=start, end=end, word=text, probability=0.9, speaker=who)


# One Whisper segment in which the speaker changes after "again?", then a turn of S1's own.
MIXED = Segment(id=0, start=0.0, end=4.0, text=" Is it raining again? Yes, all day.", words=[
    _word(0.0, 0.4, " Is", "S1"), _word(0.4, 0.6, " it", "S1"),
    _word(0.6, 1.2, " raining", "S1"), _word(1.2, 1.8, " again?", "S1"),
    _word(2.2, 2.6, " Yes,", "S2"), _word(2.6, 3.0, " all", "S2"), _word(3.0, 4.0, " day.", "S2"),
])
LATER = Segment(id=1, start=5.0, end=6.5, text=" Then we stay in.", speaker="S1")


def _transcript() -> Transcript:
    segments = [*split_at_changes(MIXED), LATER]
    segments = [s.model_copy(update={"id": i}) for i, s in enumerate(segments)]
    return Transcript(language="en", duration=7.0, text="x", segments=segments,
                      speakers=speakers_of(segments))


def test_a_segment_is_split_at_the_word_where_the_speaker_changes() -> None:
    first, second = split_at_changes(MIXED)
    assert (first.speaker, first.start, first.end, first.text) == (
        "S1", 0.0, 1.8, " Is it raining again?")
    assert (second.speaker, second.start, second.end, second.text) == (
        "S2", 2.2, 4.0, " Yes, all day.")
    assert {w.speaker for w in first.words or []} == {"S1"}


def test_a_segment_is_split_where_its_words_pause_and_nowhere_else() -> None:
    """One channel's segment that ran over the other party's turn (4.0 to 9.0 s)."""
    words = [_word(2.0, 2.5, " Right,", "S1"), _word(2.6, 4.0, " go on.", "S1"),
             _word(9.0, 9.4, " And", "S1"), _word(9.4, 10.0, " then?", "S1")]
    spanning = Segment(id=0, start=2.0, end=10.0, text=" Right, go on. And then?", words=words)
    first, second = split_at_pauses(spanning, 1.0)
    assert (first.start, first.end, first.text) == (2.0, 4.0, " Right, go on.")
    assert (second.start, second.end, second.text) == (9.0, 10.0, " And then?")
    assert split_at_pauses(spanning, 5.5) == [spanning]
    assert split_at_pauses(LATER, 1.0) == [LATER]  # no words: nothing to cut at


def test_the_speakers_list_counts_talk_time_and_turns() -> None:
    speakers = _transcript().speakers or []
    assert [(s.label, s.talk_seconds, s.turns) for s in speakers] == [
        ("S1", 3.3, 2), ("S2", 1.8, 1)]


def test_json_carries_speakers_and_a_plain_transcript_does_not() -> None:
    parsed = json.loads(render(_transcript(), "json"))
    assert [s["speaker"] for s in parsed["segments"]] == ["S1", "S2", "S1"]
    assert parsed["segments"][1]["words"][0]["speaker"] == "S2"
    assert [s["label"] for s in parsed["speakers"]] == ["S1", "S2"]
    plain = json.loads(render(Transcript(language="en", duration=1, text="a", segments=[
        Segment(id=0, start=0, end=1, text=" a")]), "json"))
    assert "speakers" not in plain
    assert "speaker" not in plain["segments"][0]


def test_txt_is_one_paragraph_per_turn() -> None:
    assert render(_transcript(), "txt") == (
        "S1: Is it raining again?\n\nS2: Yes, all day.\n\nS1: Then we stay in.\n")


def test_srt_prefixes_the_speaker_where_it_changes() -> None:
    subtitles = list(srt.parse(render(_transcript(), "srt")))
    assert [s.content for s in subtitles] == [
        "S1: Is it raining again?", "S2: Yes, all day.", "S1: Then we stay in."]
    cut = list(srt.parse(render(_transcript(), "srt", _words_per_cue())))
    assert cut[0].content.startswith("S1: ")
    assert not cut[1].content.startswith("S1")  # the same speaker's next cue has no prefix


def _words_per_cue() -> SubtitleOptions:
    return SubtitleOptions(max_line_width=12, max_line_count=1)


def test_vtt_uses_voice_spans() -> None:
    captions = webvtt.from_string(render(_transcript(), "vtt"))
    assert [(c.voice, c.text) for c in captions] == [
        ("S1", "Is it raining again?"), ("S2", "Yes, all day."), ("S1", "Then we stay in.")]


# Both parties of a call at once (a `channels` call's crosstalk): S2 speaks inside S1's turn.
CROSSTALK = Transcript(language="en", duration=5.0, text="x", segments=[
    Segment(id=0, start=0.0, end=4.996, speaker="S1",
            text=" He began a confused complaint against the wizard."),
    Segment(id=1, start=0.23, end=2.668, speaker="S2",
            text=" The horizon seems extremely distant."),
])


def _seconds(timestamp: str) -> float:
    """A WebVTT timestamp (`00:00:02.668`) in seconds, to the millisecond."""
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("options", [None, SubtitleOptions(preset="broadcast")])
def test_crosstalk_shows_both_speakers_at_their_own_times(
    options: SubtitleOptions | None,
) -> None:
    """Held off until S1's cue ended, S2's would be squeezed to nothing at 4.996 s, on
    screen for no time at all; a speaker's own cues still never overlap."""
    captions = webvtt.from_string(render(CROSSTALK, "vtt", options))
    s2 = [c for c in captions if c.voice == "S2"]
    assert " ".join(c.text for c in s2) == "The horizon seems extremely distant."
    assert _seconds(s2[0].start) == pytest.approx(0.23)
    assert _seconds(s2[-1].end) == pytest.approx(2.668)
    for who in ("S1", "S2"):
        own = [c for c in captions if c.voice == who]
        assert all(_seconds(a.end) <= _seconds(b.start) for a, b in pairwise(own))
    subtitles = list(srt.parse(render(CROSSTALK, "srt", options)))
    first_s2 = next(s for s in subtitles if s.content.startswith("S2: "))
    assert first_s2.start.total_seconds() == pytest.approx(0.23)
    assert all(s.end > s.start for s in subtitles)


def test_tsv_has_a_speaker_column() -> None:
    rows = [line.split("\t") for line in render(_transcript(), "tsv").splitlines()]
    assert rows[0] == ["start", "end", "speaker", "text"]
    assert [r[2] for r in rows[1:]] == ["S1", "S2", "S1"]


def test_ass_has_a_style_per_speaker() -> None:
    subs = pysubs2.SSAFile.from_string(render(_transcript(), "ass"))
    assert {"S1", "S2"} <= set(subs.styles)
    assert subs.styles["S1"].primarycolor != subs.styles["S2"].primarycolor
    assert [(e.style, e.plaintext) for e in subs] == [
        ("S1", "Is it raining again?"), ("S2", "Yes, all day."), ("S1", "Then we stay in.")]


def test_rttm_lists_each_turn_and_renames_apply_to_every_format() -> None:
    renames = parse_renames("S1=Ann Lee, S2=Bob")
    lines = render(_transcript(), "rttm", renames=renames).splitlines()
    turns = Annotation()
    for line in lines:
        _, _, _, start, length, _, _, who, _, _ = line.split()
        turns[Span(float(start), float(start) + float(length))] = who
    assert sorted(turns.labels()) == ["Ann_Lee", "Bob"]
    assert turns.label_duration("Ann_Lee") == pytest.approx(3.3)
    assert render(_transcript(), "txt", renames=renames).startswith("Ann Lee: Is it")
    assert webvtt.from_string(render(_transcript(), "vtt", renames=renames))[1].voice == "Bob"


@pytest.mark.parametrize("bad", ["S1", "S1=", "=Ann", "S1=Ann,S2"])
def test_malformed_renames_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="LABEL=NAME"):
        parse_renames(bad)


@pytest.mark.parametrize(("options", "message"), [
    ({"diarize": "voices", "speakers": 0}, "between 1 and 20"),
    ({"diarize": "voices", "max_speakers": 21}, "between 1 and 20"),
    ({"diarize": "voices", "speakers": 2, "min_speakers": 1}, "not both"),
    ({"diarize": "voices", "min_speakers": 3, "max_speakers": 2}, "must not exceed"),
    ({"diarize": "channels", "speakers": 2}, "only to diarize=voices"),
    ({"diarize": "none", "channel_names": "a,b"}, "only to diarize=channels"),
    ({"diarize": "channels", "known_speakers": "alice"}, "only to diarize=voices"),
    ({"diarize": "channels", "channel_names": "a,,b"}, "non-empty names"),
    ({"diarize": "channels", "channel_names": ",".join("abcdefghi")}, "1 to 8"),
])
def test_bad_speaker_options_are_invalid_speakers(options: dict[str, object],
                                                  message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobOptions.model_validate(options)
    error = options_error(caught.value)
    assert error.code == "invalid_speakers"
    assert message in error.message


def test_an_unknown_mode_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        JobOptions.model_validate({"diarize": "faces"})
    assert options_error(caught.value).code == "validation_error"


def test_events_and_webhooks_carry_the_speakers() -> None:
    transcript = _transcript()
    assert segment_data(transcript.segments[1])["speaker"] == "S2"
    assert [s["label"] for s in completed_data("job", transcript)["speakers"]] == ["S1", "S2"]
    assert "speakers" not in completed_data("job", transcript.model_copy(
        update={"speakers": None}))
    job = Job(id="job", status=JobStatus.completed, progress=1.0, created_at=datetime.now(UTC),
              filename="call.flac", options=JobOptions(diarize="voices"),
              speakers=transcript.speakers)
    body = event_body(job, "evt")
    assert [(s["label"], s["turns"]) for s in body["data"]["speakers"]] == [("S1", 2), ("S2", 1)]
