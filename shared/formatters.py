"""Download formats rendered from the canonical transcript, and the registry that names them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from shared.schemas import Segment, Transcript

# A run of dashes before `>` reads as a cue timing arrow; a plain replace of `-->` would
# turn `--->` back into `-->`, so the whole run collapses to `->`.
_SRT_ARROW = re.compile(r"-{2,}>")


class OutputFormat(NamedTuple):
    """How to render one download format and how to serve it."""

    render: Callable[[Transcript], str]
    media_type: str
    extension: str


def _ms(seconds: float) -> int:
    """Return whole milliseconds, so that rounding happens once (faster-whisper does the same)."""
    return max(0, round(seconds * 1000))


def _timestamp(seconds: float, separator: str) -> str:
    """Return `HH:MM:SS<separator>mmm`."""
    hours, rest = divmod(_ms(seconds), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def _cues(transcript: Transcript) -> list[tuple[Segment, str]]:
    """Return the segments that have text, each with its text on one line."""
    cues = [(segment, " ".join(segment.text.split())) for segment in transcript.segments]
    return [(segment, text) for segment, text in cues if text]


def to_json(transcript: Transcript) -> str:
    """Render the canonical transcript as indented JSON."""
    return transcript.model_dump_json(indent=2)


def to_txt(transcript: Transcript) -> str:
    """Render one line of plain text per segment."""
    return "".join(f"{text}\n" for _, text in _cues(transcript))


def to_srt(transcript: Transcript) -> str:
    """Render SubRip cues numbered from 1."""
    return "\n".join(
        f"{number}\n{_timestamp(segment.start, ',')} --> {_timestamp(segment.end, ',')}\n"
        f"{_SRT_ARROW.sub('->', text)}\n"
        for number, (segment, text) in enumerate(_cues(transcript), start=1)
    )


def _escape_vtt(text: str) -> str:
    """Escape the characters that WebVTT cue text reserves; this also breaks up `-->`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(transcript: Transcript) -> str:
    """Render a WebVTT file."""
    return "WEBVTT\n" + "".join(
        f"\n{_timestamp(segment.start, '.')} --> {_timestamp(segment.end, '.')}\n"
        f"{_escape_vtt(text)}\n"
        for segment, text in _cues(transcript)
    )


def to_tsv(transcript: Transcript) -> str:
    """Render `start`, `end` in integer milliseconds and `text`, as openai-whisper's WriteTSV;
    a transcript in several languages has a fourth column, each segment's `language`."""
    if len(transcript.languages) > 1:
        return "start\tend\ttext\tlanguage\n" + "".join(
            f"{_ms(segment.start)}\t{_ms(segment.end)}\t{text}\t{segment.language or ''}\n"
            for segment, text in _cues(transcript)
        )
    rows = (
        f"{_ms(segment.start)}\t{_ms(segment.end)}\t{text}\n" for segment, text in _cues(transcript)
    )
    return "start\tend\ttext\n" + "".join(rows)


FORMATS: dict[str, OutputFormat] = {
    "json": OutputFormat(to_json, "application/json", "json"),
    "txt": OutputFormat(to_txt, "text/plain; charset=utf-8", "txt"),
    "srt": OutputFormat(to_srt, "application/x-subrip; charset=utf-8", "srt"),
    "vtt": OutputFormat(to_vtt, "text/vtt; charset=utf-8", "vtt"),
    "tsv": OutputFormat(to_tsv, "text/tab-separated-values; charset=utf-8", "tsv"),
}


def render(transcript: Transcript, fmt: str) -> str:
    """Render `transcript` in the format named `fmt`; an unknown name raises KeyError."""
    return FORMATS[fmt].render(transcript)
