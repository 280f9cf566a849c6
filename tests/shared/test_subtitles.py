"""Re-cueing (`shared/output/subtitles.py`): exact tables for each kind of text, then every subtitle
format read back with a real parser (`srt`, `webvtt-py`, pysubs2) and checked for what a
subtitle editor checks: line width by display width, lines per cue, cue length, reading speed
where reachable, no overlap, times within the audio, and every word kept in order."""

from __future__ import annotations

from dataclasses import dataclass

import pysubs2
import pytest
import srt
import webvtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.output.formatters import render
from shared.output.subtitles import PRESETS, SubtitleOptions, cue_transcript, display_width
from shared.schemas import Segment, Transcript, Word


def timed(words: list[tuple[str, float, float]], id_: int = 0) -> Segment:
    """A segment whose text is its words', as faster-whisper gives it."""
    return Segment(
        id=id_, start=words[0][1], end=words[-1][2], text="".join(w for w, _, _ in words),
        words=[Word(word=w, start=a, end=b, probability=0.9) for w, a, b in words],
    )


def transcript(*segments: Segment, duration: float | None = None) -> Transcript:
    return Transcript(language=None, duration=duration or segments[-1].end + 1.0,
                      text="".join(s.text for s in segments).strip(), segments=list(segments))


def cues(source: Transcript, **options: object) -> list[tuple[int, int, str]]:
    chosen = SubtitleOptions.model_validate(options)
    return [(cue.start_ms, cue.end_ms, cue.text) for cue in cue_transcript(source, chosen)]


ENGLISH = timed([
    (" And", 0.0, 0.3), (" so,", 0.3, 0.7), (" my", 0.9, 1.1), (" fellow", 1.1, 1.5),
    (" Americans,", 1.5, 2.3), (" ask", 3.2, 3.5), (" not", 3.5, 3.9), (" what", 4.4, 4.7),
    (" your", 4.7, 4.9), (" country", 4.9, 5.4), (" can", 5.4, 5.7), (" do", 5.7, 5.9),
    (" for", 5.9, 6.1), (" you.", 6.1, 6.6),
])
KOREAN = timed([
    (" 안녕하세요,", 0.0, 0.8), (" 오늘은", 1.0, 1.4), (" 자막을", 1.4, 1.9),
    (" 만드는", 1.9, 2.3), (" 방법을", 2.3, 2.8), (" 알려", 2.8, 3.1), (" 드리겠습니다.", 3.1, 4.0),
])
JAPANESE = timed([
    ("今日", 0.0, 0.4), ("は", 0.4, 0.5), ("字幕", 0.5, 0.9), ("の", 0.9, 1.0),
    ("作り方", 1.0, 1.6), ("を", 1.6, 1.7), ("説明", 1.7, 2.2), ("します", 2.2, 2.6),
    ("。", 2.6, 2.7),
])
PUNCTUATED = timed([
    (" Yes.", 0.0, 0.4), (" We", 0.5, 0.7), (" can,", 0.7, 1.0), (" and", 1.0, 1.2),
    (" we", 1.2, 1.4), (" will!", 1.4, 1.8), (" Really?", 2.0, 2.6),
])


def test_english_breaks_at_commas_and_pauses() -> None:
    assert cues(transcript(ENGLISH), max_line_width=20, max_line_count=1) == [
        (0, 700, "And so,"),
        (900, 2300, "my fellow Americans,"),
        (3200, 3900, "ask not"),  # then a 0.5 s pause
        (4400, 5400, "what your country"),
        (5400, 6600, "can do for you."),
    ]


def test_english_on_two_balanced_lines() -> None:
    assert cues(transcript(ENGLISH), max_line_width=16, max_line_count=2) == [
        (0, 700, "And so,"),
        (900, 2300, "my fellow\nAmericans,"),
        (3200, 3900, "ask not"),
        (4400, 5900, "what your\ncountry can do"),
        (5900, 6600, "for you."),
    ]


def test_korean_counts_two_columns_per_syllable_and_breaks_between_words() -> None:
    assert cues(transcript(KOREAN), max_line_width=16, max_line_count=1) == [
        (0, 800, "안녕하세요,"),
        (1000, 1900, "오늘은 자막을"),
        (1900, 2800, "만드는 방법을"),
        (2800, 3100, "알려"),  # with the next word it would be 18 columns
        (3100, 4000, "드리겠습니다."),
    ]


def test_japanese_breaks_between_words_without_adding_spaces() -> None:
    assert cues(transcript(JAPANESE), max_line_width=12, max_line_count=1) == [
        (0, 1000, "今日は字幕の"),
        (1000, 2200, "作り方を説明"),
        (2200, 2700, "します。"),
    ]
    assert cues(transcript(JAPANESE), max_line_width=8, max_line_count=2) == [
        (0, 1000, "今日は\n字幕の"),
        (1000, 2200, "作り方\nを説明"),
        (2200, 2700, "します。"),
    ]


def test_japanese_without_word_timings_breaks_between_characters() -> None:
    segment = Segment(id=0, start=0.0, end=3.0, text="今日は字幕の作り方を説明します。")
    assert cues(transcript(segment), max_line_width=12, max_line_count=1) == [
        (0, 1125, "今日は字幕の"),
        (1125, 2250, "作り方を説明"),
        (2250, 3000, "します。"),  # the full stop stays with the character before it
    ]


def test_a_segment_without_words_is_split_in_proportion_to_its_text() -> None:
    text = " The quick brown fox jumps over the lazy dog."
    segment = Segment(id=0, start=1.0, end=5.0, text=text)
    assert cues(transcript(segment), max_line_width=20, max_line_count=1) == [
        (1000, 2778, "The quick brown fox"),
        (2778, 4556, "jumps over the lazy"),
        (4556, 5000, "dog."),
    ]


def test_a_thirty_second_segment_becomes_cues_of_at_most_seven_seconds() -> None:
    segment = Segment(id=0, start=0.0, end=30.0,
                      text=" " + " ".join(f"w{i:02d}" for i in range(1, 61)))
    words = [f"w{i:02d}" for i in range(1, 61)]
    two_lines = [" ".join(words[i:i + 7]) + "\n" + " ".join(words[i + 7:i + 14])
                 for i in range(0, 56, 14)]
    assert cues(transcript(segment, duration=30.0), preset="broadcast") == [
        (0, 7000, two_lines[0]),
        (7000, 14000, two_lines[1]),
        (14000, 21000, two_lines[2]),
        (21000, 28000, two_lines[3]),
        (28000, 30000, "w57 w58 w59 w60"),
    ]


def test_punctuation_ends_cues_first() -> None:
    expected = [
        (0, 400, "Yes."), (500, 1000, "We can,"), (1000, 1800, "and we will!"),
        (2000, 2600, "Really?"),
    ]
    assert cues(transcript(PUNCTUATED), max_line_width=14, max_line_count=1) == expected
    assert cues(transcript(PUNCTUATED), max_cue_seconds=1.0) == expected


def test_short_cues_stay_long_enough_to_read_where_there_is_room() -> None:
    fast = [timed([(" Hi.", 0.0, 0.2)]),
            timed([(" A", 1.0, 1.1), (" quick", 1.1, 1.3), (" word", 1.3, 1.5),
                   (" here.", 1.5, 1.7)], id_=1),
            timed([(" Next.", 4.0, 4.3)], id_=2)]
    assert cues(transcript(*fast, duration=4.5), min_cue_seconds=0.5,
                max_chars_per_second=10) == [
        (0, 500, "Hi."), (1000, 2800, "A quick word here."), (4000, 4500, "Next."),
    ]
    assert cues(transcript(*fast, duration=4.5), preset="broadcast") == [
        (0, 1000, "Hi."),
        (1000, 2059, "A quick word here."),  # 18 characters at 17 per second
        (3500, 4500, "Next."),  # the audio ends at 4.5 s: the cue leads in earlier
    ]


def test_no_options_keep_one_cue_per_segment() -> None:
    assert cues(transcript(ENGLISH, KOREAN.model_copy(update={"start": 7.0, "end": 11.0}))) == [
        (0, 6600, ENGLISH.text.strip()),
        (7000, 11000, KOREAN.text.strip()),
    ]


def test_explicit_options_override_the_preset() -> None:
    limits = SubtitleOptions(preset="broadcast", max_line_width=32).limits()
    assert (limits.width, limits.lines, limits.max_cue, limits.cps) == (32, 2, 7.0, 17.0)
    assert PRESETS["netflix"]["max_chars_per_second"] == 20.0


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"max_line_width": 3}, "max_line_width"),
        ({"max_line_width": "wide"}, "max_line_width"),
        ({"max_line_count": 0}, "max_line_count"),
        ({"max_cue_seconds": 0.1}, "max_cue_seconds"),
        ({"min_cue_seconds": -1}, "min_cue_seconds"),
        ({"max_chars_per_second": 0}, "max_chars_per_second"),
        ({"preset": "cinema"}, "preset"),
        ({"highlight_words": "maybe"}, "highlight_words"),
        ({"min_cue_seconds": 5, "max_cue_seconds": 2}, "min_cue_seconds"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        SubtitleOptions.model_validate(options)


def test_display_width_counts_wide_characters_twice() -> None:
    assert display_width("abc") == 3
    assert display_width("한국어") == 6
    assert display_width("日本語。") == 8


# Every format read back by a real parser, checked against the options.


@dataclass
class Parsed:
    start: float
    end: float
    lines: list[str]


def parse(fmt: str, text: str) -> list[Parsed]:
    if fmt == "srt":
        return [Parsed(c.start.total_seconds(), c.end.total_seconds(), c.content.split("\n"))
                for c in srt.parse(text)]
    if fmt == "vtt":
        return [Parsed(c.start_in_seconds + c.start_time.milliseconds / 1000,
                       c.end_in_seconds + c.end_time.milliseconds / 1000, c.text.split("\n"))
                for c in webvtt.from_string(text)]
    return [Parsed(e.start / 1000, e.end / 1000, e.plaintext.split("\n"))
            for e in pysubs2.SSAFile.from_string(text).events]


def compact(text: str) -> str:
    return "".join(text.split())


def check(source: Transcript, options: SubtitleOptions, fmt: str) -> list[Parsed]:
    """Parse `fmt` as rendered and assert every promise of the options; the cues."""
    parsed = parse(fmt, render(source, fmt, options))
    limits = options.limits()
    assert compact("".join("".join(c.lines) for c in parsed)) == compact(
        "".join(s.text for s in source.segments))
    previous_end = 0.0
    for cue in parsed:
        assert previous_end <= cue.start <= cue.end <= source.duration + 1e-9
        previous_end = cue.end
        if limits.width is not None:
            assert all(display_width(line) <= limits.width for line in cue.lines), cue
        if limits.lines is not None:
            assert len(cue.lines) <= limits.lines, cue
        if limits.max_cue is not None:
            assert cue.end - cue.start <= limits.max_cue + 1e-9, cue
    return parsed


FORMATS = ["srt", "vtt", "ass"]
ALL = transcript(
    ENGLISH,
    KOREAN.model_copy(update={"start": 7.0, "end": 11.0,
                              "words": [w.model_copy(update={"start": w.start + 7,
                                                             "end": w.end + 7})
                                        for w in KOREAN.words or []]}),
    Segment(id=2, start=12.0, end=42.0, text=" " + " ".join(["subtitle"] * 30) + "."),
    Segment(id=3, start=42.0, end=45.0, text="今日は字幕の作り方を説明します。"),
    duration=45.0,
)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("preset", [*PRESETS, None])
def test_every_format_obeys_every_preset(fmt: str, preset: str | None) -> None:
    options = SubtitleOptions(preset=preset, highlight_words=True)  # type: ignore[arg-type]
    parsed = check(ALL, options, fmt)
    if preset is None:
        assert len(parsed) == len(ALL.segments)
    else:  # reading speed is reachable here: the 30 s segment has room to spare
        long = [c for c in parsed if 12.0 <= c.start < 42.0]
        cps = PRESETS[preset]["max_chars_per_second"]
        assert all(len("".join(c.lines)) / (c.end - c.start) <= cps + 0.01 for c in long)


def test_vtt_marks_each_word_when_it_is_spoken() -> None:
    options = SubtitleOptions(max_line_width=16, max_line_count=2, highlight_words=True)
    text = render(transcript(ENGLISH), "vtt", options)
    assert "00:00:00.900 --> 00:00:02.300\nmy <00:00:01.100>fellow\n<00:00:01.500>Americans,\n" \
        in text
    assert [c.text for c in webvtt.from_string(text)][1] == "my fellow\nAmericans,"


def test_ass_karaoke_gives_each_word_its_length() -> None:
    options = SubtitleOptions(max_line_width=16, max_line_count=2, highlight_words=True)
    events = pysubs2.SSAFile.from_string(render(transcript(ENGLISH), "ass", options)).events
    assert events[1].text == r"{\k20}my{\k40} fellow\N{\k80}Americans,"
    assert events[1].plaintext == "my fellow\nAmericans,"


def test_ass_text_cannot_inject_override_tags() -> None:
    segment = Segment(id=0, start=0.0, end=2.0, text=r" a {\b1}bold\N b")
    [event] = pysubs2.SSAFile.from_string(render(transcript(segment), "ass")).events
    assert event.plaintext.replace("\u2060", "") == r"a (\b1)bold\N b"


# Properties over any text and timing hypothesis can think of.

WORD = st.one_of(
    st.text(st.sampled_from("abcdefghij,.?!"), min_size=1, max_size=14),
    st.text(st.sampled_from("가나다라마바사"), min_size=1, max_size=6),
    st.text(st.sampled_from("日本語字幕のをはす。、"), min_size=1, max_size=8),
)


@st.composite
def transcripts(draw: st.DrawFn) -> Transcript:
    segments, at = [], draw(st.floats(0, 2))
    for id_ in range(draw(st.integers(1, 4))):
        words, start = [], at
        for text in draw(st.lists(WORD, min_size=1, max_size=30)):
            length = draw(st.floats(0, 1.5))
            words.append((draw(st.sampled_from([" ", ""])) + text, at, at + length))
            at += length + draw(st.floats(0, 1))
        segment = timed(words, id_)
        if draw(st.booleans()):  # no word timings
            segment = segment.model_copy(update={"words": None, "start": start,
                                                 "end": max(at, start)})
        segments.append(segment)
    return transcript(*segments, duration=max(0.01, at + draw(st.floats(-1, 1))))


OPTIONS = st.builds(
    SubtitleOptions,
    preset=st.sampled_from([None, *PRESETS]),
    max_line_width=st.one_of(st.none(), st.integers(8, 60)),
    max_line_count=st.one_of(st.none(), st.integers(1, 3)),
    max_cue_seconds=st.one_of(st.none(), st.floats(2, 10)),
    min_cue_seconds=st.one_of(st.none(), st.floats(0, 2)),
    max_chars_per_second=st.one_of(st.none(), st.floats(5, 30)),
    highlight_words=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=transcripts(), options=OPTIONS, fmt=st.sampled_from(FORMATS))
def test_any_transcript_renders_within_the_options(
    source: Transcript, options: SubtitleOptions, fmt: str
) -> None:
    check(source, options, fmt)
