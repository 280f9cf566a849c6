"""Every download format, checked against exact tables and read back with real parsers."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
import srt
import webvtt

from shared.output.formatters import FORMATS, render
from shared.schemas import Segment, Transcript, Word


def _segment(id_: int, start: float, end: float, text: str) -> Segment:
    return Segment(id=id_, start=start, end=end, text=text)


TRANSCRIPT = Transcript(
    language="en",
    language_probability=0.98,
    duration=3665.0,
    text="Fish & chips. Say <b>bold</b> --> now\n\nthen more a ---> b\tc",
    segments=[
        Segment(
            id=0,
            start=0.0,
            end=2.5,
            text=" Fish & chips. ",
            avg_logprob=-0.2,
            no_speech_prob=0.01,
            words=[
                Word(start=0.0, end=1.0, word=" Fish", probability=0.9),
                Word(start=1.0, end=2.5, word=" & chips.", probability=0.8),
            ],
        ),
        _segment(1, 3661.001, 3662.5, " Say <b>bold</b> --> now\n\nthen more"),
        _segment(2, 3662.5, 3663.0, "   \n "),
        _segment(3, 3663.0004, 3664.9996, "a ---> b\tc"),
    ],
)
EMPTY = Transcript(language=None, duration=0.0, text="", segments=[])

EXPECTED_TXT = "Fish & chips.\nSay <b>bold</b> --> now then more\na ---> b c\n"

EXPECTED_SRT = (
    "1\n"
    "00:00:00,000 --> 00:00:02,500\n"
    "Fish & chips.\n"
    "\n"
    "2\n"
    "01:01:01,001 --> 01:01:02,500\n"
    "Say <b>bold</b> -> now then more\n"
    "\n"
    "3\n"
    "01:01:03,000 --> 01:01:05,000\n"
    "a -> b c\n"
)

EXPECTED_VTT = (
    "WEBVTT\n"
    "\n"
    "00:00:00.000 --> 00:00:02.500\n"
    "Fish &amp; chips.\n"
    "\n"
    "01:01:01.001 --> 01:01:02.500\n"
    "Say &lt;b&gt;bold&lt;/b&gt; --&gt; now then more\n"
    "\n"
    "01:01:03.000 --> 01:01:05.000\n"
    "a ---&gt; b c\n"
)

EXPECTED_TSV = [
    "start\tend\ttext",
    "0\t2500\tFish & chips.",
    "3661001\t3662500\tSay <b>bold</b> --> now then more",
    "3663000\t3665000\ta ---> b c",
]


def test_registry_has_exactly_the_seven_formats() -> None:
    assert {name: (f.media_type, f.extension) for name, f in FORMATS.items()} == {
        "json": ("application/json", "json"),
        "txt": ("text/plain; charset=utf-8", "txt"),
        "srt": ("application/x-subrip; charset=utf-8", "srt"),
        "vtt": ("text/vtt; charset=utf-8", "vtt"),
        "tsv": ("text/tab-separated-values; charset=utf-8", "tsv"),
        "ass": ("text/x-ssa; charset=utf-8", "ass"),
        "rttm": ("text/plain; charset=utf-8", "rttm"),
    }


def test_render_dispatches_through_the_registry() -> None:
    for name, output in FORMATS.items():
        assert render(TRANSCRIPT, name) == output.render(TRANSCRIPT)


def test_render_rejects_an_unknown_format() -> None:
    with pytest.raises(KeyError):
        render(TRANSCRIPT, "docx")


def test_json_round_trips() -> None:
    assert Transcript.model_validate_json(render(TRANSCRIPT, "json")) == TRANSCRIPT


def test_txt_is_one_stripped_line_per_segment() -> None:
    assert render(TRANSCRIPT, "txt") == EXPECTED_TXT


def test_srt_is_exact() -> None:
    assert render(TRANSCRIPT, "srt") == EXPECTED_SRT


def test_srt_parses_back_to_the_cues() -> None:
    cues = list(srt.parse(render(TRANSCRIPT, "srt")))
    assert [(c.index, c.start, c.end, c.content) for c in cues] == [
        (1, timedelta(0), timedelta(seconds=2.5), "Fish & chips."),
        (
            2,
            timedelta(hours=1, minutes=1, seconds=1, milliseconds=1),
            timedelta(hours=1, minutes=1, seconds=2, milliseconds=500),
            "Say <b>bold</b> -> now then more",
        ),
        (
            3,
            timedelta(hours=1, minutes=1, seconds=3),
            timedelta(hours=1, minutes=1, seconds=5),
            "a -> b c",
        ),
    ]


def test_vtt_is_exact() -> None:
    assert render(TRANSCRIPT, "vtt") == EXPECTED_VTT


def test_vtt_parses_back_to_the_cues() -> None:
    captions = webvtt.from_string(render(TRANSCRIPT, "vtt"))
    # webvtt-py keeps character references as written, so unescape to compare with the source.
    assert [(c.start, c.end, html.unescape(c.text)) for c in captions] == [
        ("00:00:00.000", "00:00:02.500", "Fish & chips."),
        ("01:01:01.001", "01:01:02.500", "Say <b>bold</b> --> now then more"),
        ("01:01:03.000", "01:01:05.000", "a ---> b c"),
    ]


def test_tsv_is_exact() -> None:
    assert render(TRANSCRIPT, "tsv").splitlines() == EXPECTED_TSV
    assert render(TRANSCRIPT, "tsv").endswith("\n")


@pytest.mark.parametrize(
    ("seconds", "stamp"),
    [
        (0.0, "00:00:00,000"),
        (0.0004, "00:00:00,000"),
        (1.0006, "00:00:01,001"),
        (59.9996, "00:01:00,000"),
        (3599.9999, "01:00:00,000"),
        (36000.25, "10:00:00,250"),
        (-0.2, "00:00:00,000"),
    ],
)
def test_timestamps_round_to_whole_milliseconds(seconds: float, stamp: str) -> None:
    transcript = Transcript(
        language="en", duration=36001.0, text="x", segments=[_segment(0, seconds, seconds, "x")]
    )
    assert render(transcript, "srt") == f"1\n{stamp} --> {stamp}\nx\n"
    vtt_stamp = stamp.replace(",", ".")
    assert render(transcript, "vtt") == f"WEBVTT\n\n{vtt_stamp} --> {vtt_stamp}\nx\n"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("txt", ""), ("srt", ""), ("vtt", "WEBVTT\n"), ("tsv", "start\tend\ttext\n")],
)
def test_empty_transcript(fmt: str, expected: str) -> None:
    assert render(EMPTY, fmt) == expected


def test_empty_transcript_json_round_trips() -> None:
    assert Transcript.model_validate_json(render(EMPTY, "json")) == EMPTY


def test_empty_transcript_parses_as_empty_subtitles() -> None:
    assert list(srt.parse(render(EMPTY, "srt"))) == []
    assert list(webvtt.from_string(render(EMPTY, "vtt"))) == []


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_multiline_text_never_opens_a_blank_line_inside_a_cue(fmt: str) -> None:
    body = render(TRANSCRIPT, fmt).removeprefix("WEBVTT\n\n")
    assert all(len(cue.splitlines()) == 2 + (fmt == "srt") for cue in body.split("\n\n"))


def test_tsv_of_several_languages_has_a_language_column() -> None:
    mixed = Transcript(language="en", languages=["en", "de"], duration=4.0, text="Hi. Hallo.",
                       segments=[Segment(id=0, start=0, end=1.5, text=" Hi.", language="en"),
                                 Segment(id=1, start=2, end=3.25, text=" Hallo.", language="de")])
    assert render(mixed, "tsv") == (
        "start\tend\ttext\tlanguage\n0\t1500\tHi.\ten\n2000\t3250\tHallo.\tde\n")
