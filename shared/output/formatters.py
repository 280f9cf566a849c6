"""Download formats rendered from the canonical transcript, and the registry that names them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import pysubs2

from shared.output.subtitles import Cue, SubtitleOptions, cue_transcript, join_tokens, word_starts
from shared.schemas import Segment, Transcript
from shared.turns import display_names, renamed

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
    return _timestamp_ms(_ms(seconds), separator)


def _timestamp_ms(ms: int, separator: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def _cues(transcript: Transcript) -> list[tuple[Segment, str]]:
    """Return the segments that have text, each with its text on one line."""
    cues = [(segment, " ".join(segment.text.split())) for segment in transcript.segments]
    return [(segment, text) for segment, text in cues if text]


def to_json(transcript: Transcript) -> str:
    """Render the canonical transcript as indented JSON (`sounds` only where the job asked)."""
    return transcript.model_dump_json(
        indent=2, exclude={"sounds"} if transcript.sounds is None else None)


def to_txt(transcript: Transcript) -> str:
    """Render one line of plain text per segment; a diarized transcript as one paragraph per
    turn, `S1: ...` (or the speaker's name)."""
    if transcript.speakers is None:
        return "".join(f"{text}\n" for _, text in _cues(transcript))
    names = display_names(transcript)
    turns: list[tuple[str | None, list[str]]] = []
    for segment, text in _cues(transcript):
        if turns and turns[-1][0] == segment.speaker:
            turns[-1][1].append(text)
        else:
            turns.append((segment.speaker, [text]))
    return "\n".join(
        f"{names[who] + ': ' if who is not None else ''}{' '.join(texts)}\n"
        for who, texts in turns)


def _speaker_changes(transcript: Transcript, cues: list[Cue]) -> list[str]:
    """Each cue's `Name: ` prefix where its speaker differs from the cue before, else ''."""
    names, previous, prefixes = display_names(transcript), None, []
    for cue in cues:
        changed = cue.speaker is not None and cue.speaker != previous
        prefixes.append(f"{names[cue.speaker]}: " if changed and cue.speaker else "")
        previous = cue.speaker
    return prefixes


def to_srt(transcript: Transcript, options: SubtitleOptions | None = None) -> str:
    """Render SubRip cues numbered from 1, cut as `options` say; in a diarized transcript a
    cue starts with its speaker where the speaker changes."""
    cues = cue_transcript(transcript, options)
    return "\n".join(
        f"{number}\n{_timestamp_ms(cue.start_ms, ',')} --> {_timestamp_ms(cue.end_ms, ',')}\n"
        f"{_SRT_ARROW.sub('->', prefix + cue.text)}\n"
        for number, (cue, prefix)
        in enumerate(zip(cues, _speaker_changes(transcript, cues), strict=True), start=1)
    )


def _escape_vtt(text: str) -> str:
    """Escape the characters that WebVTT cue text reserves; this also breaks up `-->`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt_text(cue: Cue, highlight: bool) -> str:
    """The cue's lines; with `highlight`, a cue timestamp before each word after the first
    (https://www.w3.org/TR/webvtt1/#webvtt-cue-timestamp), so players mark the word spoken."""
    if not highlight:
        return _escape_vtt(cue.text)
    starts = iter(word_starts(cue))
    lines = []
    for line in cue.lines:
        words = []
        for i, token in enumerate(line):
            at = next(starts)
            stamp = f"<{_timestamp_ms(at, '.')}>" if cue.start_ms < at < cue.end_ms else ""
            words.append((" " if token.space_before and i else "") + stamp
                         + _escape_vtt(token.text))
        lines.append("".join(words))
    return "\n".join(lines)


def _voice(names: dict[str, str], speaker: str | None) -> str:
    """A WebVTT voice span's opening tag (https://www.w3.org/TR/webvtt1/#webvtt-cue-voice-span),
    or nothing for a cue without a speaker."""
    return "" if speaker is None else f"<v {_escape_vtt(names[speaker])}>"


def to_vtt(transcript: Transcript, options: SubtitleOptions | None = None) -> str:
    """Render a WebVTT file, cut as `options` say; a diarized transcript's cues in voice spans
    (`<v S1>`)."""
    highlight = options is not None and options.highlight_words
    names = display_names(transcript)
    return "WEBVTT\n" + "".join(
        f"\n{_timestamp_ms(cue.start_ms, '.')} --> {_timestamp_ms(cue.end_ms, '.')}\n"
        f"{_voice(names, cue.speaker)}{_vtt_text(cue, highlight)}\n"
        for cue in cue_transcript(transcript, options)
    )


def _escape_ass(text: str) -> str:
    """ASS reads `{...}` as override tags and a backslash before `N`, `n` or `h` as a break or
    a hard space. It has no escape for braces, so they become parentheses; a word joiner after
    each backslash keeps it a backslash."""
    return text.replace("\\", "\\\u2060").replace("{", "(").replace("}", ")")


def _ass_text(cue: Cue, karaoke: bool) -> str:
    """The cue's lines joined by `\\N`; with `karaoke`, a `\\k` tag before each word giving
    its length in centiseconds, so that the word being sung or spoken lights up."""
    if not karaoke:
        return "\\N".join(_escape_ass(join_tokens(line)) for line in cue.lines)
    starts = [*word_starts(cue), cue.end_ms]
    index, lines = 0, []
    for line in cue.lines:
        words = []
        for i, token in enumerate(line):
            lead = (starts[index] - cue.start_ms) // 10 if index == 0 else 0
            length = (starts[index + 1] - starts[index]) // 10
            words.append((f"{{\\k{lead}}}" if lead else "") + f"{{\\k{length}}}"
                         + (" " if token.space_before and i else "") + _escape_ass(token.text))
            index += 1
        lines.append("".join(words))
    return "\\N".join(lines)


def to_ass(transcript: Transcript, options: SubtitleOptions | None = None) -> str:
    """Render an Advanced SubStation Alpha file through pysubs2, cut as `options` say."""
    karaoke = options is not None and options.highlight_words
    subs = pysubs2.SSAFile()
    styles = _speaker_styles(subs, transcript)
    for cue in cue_transcript(transcript, options):
        # ASS counts centiseconds: starts round up and ends down, so that cues stay apart,
        # within the audio and within their longest length.
        end = cue.end_ms // 10 * 10
        start = min(-(-cue.start_ms // 10) * 10, end)
        style = styles.get(cue.speaker or "", "Default")
        subs.append(pysubs2.SSAEvent(start=start, end=end, text=_ass_text(cue, karaoke),
                                     style=style, name=style if cue.speaker else ""))
    return subs.to_string("ass")


# Primary colours of speakers' ASS styles, in turn (the page's palette).
SPEAKER_COLOURS = ["#ffd75e", "#7fd1ff", "#a6e36e", "#ff9f9f", "#d7a6ff", "#ffb870"]


def _speaker_styles(subs: pysubs2.SSAFile, transcript: Transcript) -> dict[str, str]:
    """A style per speaker, named as the speaker and coloured in turn: {label: style}."""
    styles: dict[str, str] = {}
    for i, (label, name) in enumerate(display_names(transcript).items()):
        style = subs.styles["Default"].copy()
        colour = SPEAKER_COLOURS[i % len(SPEAKER_COLOURS)]
        style.primarycolor = pysubs2.Color(*bytes.fromhex(colour[1:]))
        styles[label] = name.replace(",", " ")  # a comma would end the style's name
        subs.styles[styles[label]] = style
    return styles


def to_tsv(transcript: Transcript) -> str:
    """Render `start`, `end` in integer milliseconds and `text`, as openai-whisper's WriteTSV;
    a transcript in several languages has a fourth column, each segment's `language`; one with
    `sounds` a last column `kind`, `speech` or `sound` (the text of a sound row is its label),
    the rows in time order; a diarized one a `speaker` column after `end`."""
    if transcript.sounds is not None:
        return _tsv_with_sounds(transcript)
    if transcript.speakers is not None:
        names = display_names(transcript)
        return "start\tend\tspeaker\ttext\n" + "".join(
            f"{_ms(segment.start)}\t{_ms(segment.end)}\t"
            f"{names.get(segment.speaker or '', '')}\t{text}\n"
            for segment, text in _cues(transcript)
        )
    if len(transcript.languages) > 1:
        return "start\tend\ttext\tlanguage\n" + "".join(
            f"{_ms(segment.start)}\t{_ms(segment.end)}\t{text}\t{segment.language or ''}\n"
            for segment, text in _cues(transcript)
        )
    rows = (
        f"{_ms(segment.start)}\t{_ms(segment.end)}\t{text}\n" for segment, text in _cues(transcript)
    )
    return "start\tend\ttext\n" + "".join(rows)


def to_rttm(transcript: Transcript) -> str:
    """Render NIST RTTM, the diarization scorers' format: one `SPEAKER` line per segment, its
    start and length in seconds and its speaker (a name's spaces as `_`); a transcript that
    was not diarized has none."""
    names = display_names(transcript)
    return "".join(
        f"SPEAKER audio 1 {segment.start:.3f} {max(segment.end - segment.start, 0):.3f} "
        f"<NA> <NA> {'_'.join(names[segment.speaker].split())} <NA> <NA>\n"
        for segment, _ in _cues(transcript) if segment.speaker is not None
    )


def _tsv_with_sounds(transcript: Transcript) -> str:
    several = len(transcript.languages) > 1
    names = display_names(transcript) if transcript.speakers is not None else None
    rows = [(_ms(s.start), _ms(s.end), names.get(s.speaker or "", "") if names else "", text,
             s.language or "", "speech") for s, text in _cues(transcript)]
    rows += [(_ms(s.start), _ms(s.end), "", s.label, "", "sound")
             for s in transcript.sounds or []]
    header = ["start", "end", *(["speaker"] if names is not None else []), "text",
              *(["language"] if several else []), "kind"]
    lines = ["\t".join(header)] + [
        "\t".join([str(a), str(b), *([speaker] if names is not None else []), text,
                   *([language] if several else []), kind])
        for a, b, speaker, text, language, kind in sorted(rows, key=lambda row: row[:2])]
    return "\n".join(lines) + "\n"


FORMATS: dict[str, OutputFormat] = {
    "json": OutputFormat(to_json, "application/json", "json"),
    "txt": OutputFormat(to_txt, "text/plain; charset=utf-8", "txt"),
    "srt": OutputFormat(to_srt, "application/x-subrip; charset=utf-8", "srt"),
    "vtt": OutputFormat(to_vtt, "text/vtt; charset=utf-8", "vtt"),
    "tsv": OutputFormat(to_tsv, "text/tab-separated-values; charset=utf-8", "tsv"),
    "ass": OutputFormat(to_ass, "text/x-ssa; charset=utf-8", "ass"),
    "rttm": OutputFormat(to_rttm, "text/plain; charset=utf-8", "rttm"),
}

# The formats that `SubtitleOptions` cut into cues.
SUBTITLE_RENDERERS: dict[str, Callable[[Transcript, SubtitleOptions | None], str]] = {
    "srt": to_srt, "vtt": to_vtt, "ass": to_ass,
}


def render(transcript: Transcript, fmt: str, options: SubtitleOptions | None = None,
           renames: dict[str, str] | None = None) -> str:
    """Render `transcript` in the format named `fmt` (subtitle formats cut as `options` say,
    speakers named as `renames` asks, {label: name}); an unknown name raises KeyError."""
    transcript = renamed(transcript, renames)
    if fmt in SUBTITLE_RENDERERS:
        return SUBTITLE_RENDERERS[fmt](transcript, options)
    return FORMATS[fmt].render(transcript)
