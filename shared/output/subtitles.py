"""Re-cueing a transcript into subtitles people can publish (issue 14).

A Whisper segment is often 20 or 30 seconds and 200 characters long; players and broadcasters
want short cues of at most a few lines of a few dozen columns. `cue_transcript` cuts each
segment into such cues, a pure function of the stored transcript and `SubtitleOptions`:

- Widths are display widths (`wcwidth`): an East Asian wide character counts 2 columns, so
  Korean, Japanese and Chinese lines are as wide on screen as the limit says.
- Cues break between words, preferring a break after punctuation or at a pause. Word timings
  come from the segment's words when the job has them; otherwise a segment's time is shared
  among its words in proportion to their length (an estimate). Chinese and Japanese, written
  without spaces, break between any two characters.
- Words are never lost, reordered or duplicated: the cues' texts joined are the segments'
  texts, whitespace aside. Cues lie within [0, duration], and a speaker's cues never overlap;
  two speakers' cues overlap only where both spoke at once (a `channels` call's crosstalk).
- Options left unset (and no preset) mean no limit: one cue per segment, as before.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from wcwidth import wcwidth

from shared.output.sdh import parse_words, sound_spans
from shared.schemas import Segment, Transcript

# Fullwidth marks are meant: CJK text uses them.
SENTENCE_END = frozenset(".?!…。？！")  # noqa: RUF001
CLAUSE_END = frozenset(",;:、，；：—")  # noqa: RUF001
# Never at the start of a line (the Japanese rule of kinsoku shori, in brief).
_NO_LINE_START = SENTENCE_END | CLAUSE_END | frozenset("」』）)〉》ー")  # noqa: RUF001
PAUSE_SECONDS = 0.25
"""A gap between two words at least this long is a pause worth breaking at."""

PresetName = Literal["broadcast", "netflix", "mobile", "sdh"]

PRESETS: dict[str, dict[str, float]] = {
    # The common broadcast rule of thumb (EBU/BBC practice): two lines of 42 columns, at most
    # 7 s on screen, about 17 characters per second, at least 1 s.
    "broadcast": {"max_line_width": 42, "max_line_count": 2, "max_cue_seconds": 7.0,
                  "min_cue_seconds": 1.0, "max_chars_per_second": 17.0},
    # Netflix's Timed Text Style Guide for adult programmes: 42 characters, 2 lines, 5/6 s to
    # 7 s, 20 characters per second.
    "netflix": {"max_line_width": 42, "max_line_count": 2, "max_cue_seconds": 7.0,
                "min_cue_seconds": 0.833, "max_chars_per_second": 20.0},
    # Narrow phone screens: shorter lines, shorter cues.
    "mobile": {"max_line_width": 32, "max_line_count": 2, "max_cue_seconds": 6.0,
               "min_cue_seconds": 1.0, "max_chars_per_second": 17.0},
}
# For deaf and hard-of-hearing viewers: broadcast's limits, and `[MUSIC]`-style cues naming the
# transcript's sounds between the speech cues (shared/output/sdh.py).
PRESETS["sdh"] = PRESETS["broadcast"]


class SubtitleOptions(BaseModel):
    """How subtitle downloads (srt, vtt, ass) are cut into cues; unset means no limit, or the
    preset's value when a preset is named."""

    model_config = ConfigDict(frozen=True)

    preset: PresetName | None = Field(
        default=None, description="Named defaults: `broadcast` (42 columns, 2 lines, 7 s, "
        "17 characters/s), `netflix` (42, 2, 7 s, 20/s), `mobile` (32, 2, 6 s, 17/s), `sdh` "
        "(broadcast's, with `[MUSIC]`-style cues for the transcript's sounds between speech).")
    max_line_width: int | None = Field(
        default=None, ge=8, le=1000,
        description="Widest line in columns; East Asian wide characters count 2.")
    max_line_count: int | None = Field(default=None, ge=1, le=10, description="Lines per cue.")
    max_cue_seconds: float | None = Field(
        default=None, ge=0.5, le=3600, description="Longest time one cue stays on screen.")
    min_cue_seconds: float | None = Field(
        default=None, ge=0, le=60,
        description="Shortest time a cue stays on screen, where the next cue leaves room.")
    max_chars_per_second: float | None = Field(
        default=None, ge=1, le=1000,
        description="Reading speed: a cue is kept on screen long enough for it, where the "
        "next cue leaves room.")
    highlight_words: bool = Field(
        default=False, description="Mark when each word is spoken (WebVTT cue timestamps, ASS "
        "karaoke), so players highlight the word being heard.")
    sound_words: str | None = Field(
        default=None, max_length=2000,
        description="With the `sdh` preset, the words shown for sound labels, as "
        "`label=WORD,label=WORD` (`music=MUSIQUE`); unnamed labels keep the words of the "
        "transcript's language.")

    @field_validator("sound_words")
    @classmethod
    def _known_labels(cls, value: str | None) -> str | None:
        if value is not None:
            parse_words(value)
        return value

    @model_validator(mode="after")
    def _min_below_max(self) -> SubtitleOptions:
        # Only between two given values: a preset's minimum gives way to a shorter maximum.
        given = (self.min_cue_seconds, self.max_cue_seconds)
        if None not in given and given[0] > given[1]:  # type: ignore[operator]
            raise ValueError("min_cue_seconds must not exceed max_cue_seconds")
        return self

    def limits(self) -> Limits:
        """The limits in force: the options given, else the preset's."""
        preset = PRESETS.get(self.preset or "", {})

        def pick(name: str) -> float | None:
            value = getattr(self, name)
            return value if value is not None else preset.get(name)

        width, count = pick("max_line_width"), pick("max_line_count")
        longest, shortest = pick("max_cue_seconds"), pick("min_cue_seconds") or 0.0
        return Limits(
            width=int(width) if width is not None else None,
            lines=int(count) if count is not None else None,
            max_cue=longest,
            min_cue=min(shortest, longest) if longest is not None else shortest,
            cps=pick("max_chars_per_second"),
        )


@dataclass(frozen=True)
class Limits:
    """Resolved limits; None means unlimited."""

    width: int | None
    lines: int | None
    max_cue: float | None
    min_cue: float
    cps: float | None


@dataclass(frozen=True)
class Token:
    """A word (or, in scripts without spaces, a character) with its time."""

    text: str
    start: float
    end: float
    space_before: bool


@dataclass
class Cue:
    start_ms: int
    end_ms: int
    lines: list[list[Token]]
    speaker: str | None = None  # the segment's speaker label, where the job was diarized

    @property
    def text(self) -> str:
        return "\n".join(join_tokens(line) for line in self.lines)

    @property
    def tokens(self) -> list[Token]:
        return [token for line in self.lines for token in line]


def display_width(text: str) -> int:
    """Columns `text` takes on screen: wide East Asian characters 2, combining marks 0."""
    return sum(max(wcwidth(ch), 0) for ch in text)


def join_tokens(tokens: list[Token]) -> str:
    return "".join((" " if t.space_before and i else "") + t.text for i, t in enumerate(tokens))


def _compact(text: str) -> str:
    return "".join(text.split())


def _breaks_anywhere(ch: str) -> bool:
    """Chinese and Japanese characters, written without spaces, may break on either side;
    Hangul is wide too, but Korean puts spaces between words."""
    hangul = "\uac00" <= ch <= "\ud7af" or "\u1100" <= ch <= "\u11ff" or "\u3130" <= ch <= "\u318f"
    return unicodedata.east_asian_width(ch) in ("W", "F") and not hangul


def _pieces(word: str) -> list[str]:
    """A word cut where lines may break inside it: around each Chinese or Japanese character,
    except before punctuation and closing marks, which stay with the character before."""
    pieces: list[str] = []
    for ch in word:
        if pieces and (ch in _NO_LINE_START
                       or not (_breaks_anywhere(pieces[-1][-1]) or _breaks_anywhere(ch))):
            pieces[-1] += ch
        else:
            pieces.append(ch)
    return pieces


def _spread(pieces: list[tuple[str, bool]], start: float, end: float) -> list[Token]:
    """Tokens sharing [start, end] in proportion to their length."""
    total = sum(len(text) for text, _ in pieces) or 1
    tokens, at = [], start
    for text, space in pieces:
        step = (end - start) * len(text) / total
        tokens.append(Token(text, at, at + step, space))
        at += step
    return tokens


def _split_wide(token: Token, limits: Limits) -> list[Token]:
    """A token too wide for a line, or too long for a cue, as pieces: between Chinese or
    Japanese characters first, then anywhere (a word no line can hold)."""
    too_wide = limits.width is not None and display_width(token.text) > limits.width
    too_long = limits.max_cue is not None and token.end - token.start > limits.max_cue
    if not (too_wide or too_long):
        return [token]
    pieces = _pieces(token.text)
    if limits.width is not None:
        pieces = [chunk for piece in pieces for chunk in _chunks(piece, limits.width)]
    spread = _spread([(p, False) for p in pieces], token.start, token.end)
    return [replace(spread[0], space_before=token.space_before), *spread[1:]]


def _chunks(text: str, width: int) -> list[str]:
    chunks = [""]
    for ch in text:
        if chunks[-1] and display_width(chunks[-1] + ch) > width:
            chunks.append("")
        chunks[-1] += ch
    return chunks


def segment_tokens(segment: Segment, limits: Limits) -> list[Token]:
    """The segment's words with times: its word timings when they spell its text, else its
    span shared among its words in proportion to their length."""
    words = segment.words or []
    if words and _compact("".join(w.word for w in words)) == _compact(segment.text):
        tokens, at = [], segment.start
        for word in words:
            if word.word.strip():
                start = max(word.start, at)
                tokens.append(Token(word.word.strip(), start, max(word.end, start),
                                    word.word[:1].isspace()))
                at = start
    else:
        tokens = _spread([(w, True) for w in segment.text.split()], segment.start, segment.end)
    return [piece for token in tokens for piece in _split_wide(token, limits)]


@lru_cache(maxsize=1 << 16)
def _width(text: str) -> int:
    return display_width(text)


def _line_width(tokens: list[Token]) -> int:
    spaces = sum(1 for i, t in enumerate(tokens) if i and t.space_before)
    return spaces + sum(_width(t.text) for t in tokens)


def _greedy_lines(tokens: list[Token], width: int) -> list[list[Token]]:
    """The fewest lines of at most `width` columns (a token wider than that alone on one)."""
    lines: list[list[Token]] = [[]]
    used = 0
    for token in tokens:
        grown = used + (1 if lines[-1] and token.space_before else 0) + _width(token.text)
        if lines[-1] and grown > width:
            lines.append([])
            grown = _width(token.text)
        lines[-1].append(token)
        used = grown
    return lines


def wrap(tokens: list[Token], limits: Limits) -> list[list[Token]] | None:
    """The tokens as lines within the limits (two lines balanced), or None if they do not fit."""
    if limits.width is None:
        return [tokens]
    lines = _greedy_lines(tokens, limits.width)
    if limits.lines is not None and len(lines) > limits.lines:
        return None
    return _balanced(tokens, limits.width) if len(lines) == 2 else lines


def _balanced(tokens: list[Token], width: int) -> list[list[Token]]:
    """Two lines of similar width, broken after punctuation where that costs little."""
    def cost(k: int) -> float:
        top, bottom = _line_width(tokens[:k]), _line_width(tokens[k:])
        if max(top, bottom) > width:
            return float("inf")
        bonus = 6 if tokens[k - 1].text[-1] in SENTENCE_END | CLAUSE_END else 0
        return abs(top - bottom) - bonus

    k = min(range(1, len(tokens)), key=cost)
    return [tokens[:k], tokens[k:]]


def _fits(tokens: list[Token], limits: Limits) -> bool:
    if limits.max_cue is not None and tokens[-1].end - tokens[0].start > limits.max_cue:
        return False
    if limits.width is None or limits.lines is None:
        return True
    return len(_greedy_lines(tokens, limits.width)) <= limits.lines


def _break_score(tokens: list[Token], k: int, following: Token) -> float:
    """How good a cue break after `tokens[k-1]` is: after a sentence, a clause, at a pause."""
    last, after = tokens[k - 1], tokens[k] if k < len(tokens) else following
    score = 3.0 if last.text[-1] in SENTENCE_END else 2.0 if last.text[-1] in CLAUSE_END else 0.0
    gap = after.start - last.end
    return score + (1 + min(gap, 2.0) if gap >= PAUSE_SECONDS else 0.0)


def _split_point(tokens: list[Token], following: Token) -> int:
    """Where to end the cue `tokens` that `following` does not fit in: the best break past its
    first third, else right before `following`."""
    candidates = range(max(1, len(tokens) // 3), len(tokens) + 1)
    return max(candidates, key=lambda k: (_break_score(tokens, k, following), k))


def split_segment(tokens: list[Token], limits: Limits) -> list[list[Token]]:
    """The segment's tokens grouped into cues that each fit the limits."""
    cues: list[list[Token]] = []
    current: list[Token] = []
    for token in tokens:
        while current and not _fits([*current, token], limits):
            k = _split_point(current, token)
            cues.append(current[:k])
            current = current[k:]
        current.append(token)
    return [*cues, current] if current else cues


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def cue_transcript(transcript: Transcript, options: SubtitleOptions | None = None) -> list[Cue]:
    """The transcript as cues within `options`' limits, in order (see `_settle` for overlaps)."""
    limits = (options or SubtitleOptions()).limits()
    cues: list[Cue] = []
    for segment in transcript.segments:
        groups = split_segment(segment_tokens(segment, limits), limits)
        for i, group in enumerate(groups):
            start = segment.start if i == 0 else group[0].start
            end = segment.end if i == len(groups) - 1 else group[-1].end
            if limits.max_cue is not None and end - start > limits.max_cue:
                start, end = group[0].start, group[-1].end  # the words' own span fits better
            lines = wrap(group, limits) or [group]
            cues.append(Cue(_ms(start), _ms(end), lines, segment.speaker))
    if options is not None and options.preset == "sdh":
        cues = _with_sounds(cues, transcript, options)
    # Rounded down, so that no cue ends after the audio does.
    _settle(cues, math.floor(round(transcript.duration * 1000, 6)), limits)
    return cues


def _with_sounds(cues: list[Cue], transcript: Transcript, options: SubtitleOptions) -> list[Cue]:
    """The speech cues with a cue for each sound in the gaps between them, in time order."""
    own = parse_words(options.sound_words) if options.sound_words else None
    spans = sound_spans(transcript, [(c.start_ms, c.end_ms) for c in cues], own)
    sounds = [Cue(a, b, [[Token(text, a / 1000, b / 1000, False)]]) for a, b, text in spans]
    return sorted([*cues, *sounds], key=lambda cue: cue.start_ms)


def _settle(cues: list[Cue], duration_ms: int, limits: Limits) -> None:
    """Clamp cues into the audio, none over an earlier one of the same speaker, then keep each
    on screen for its minimum and its reading time where the next cue leaves room. Two
    speakers' cues overlap where they spoke at once (crosstalk on a `channels` call): held off
    until the other's cue ended, the later one would be squeezed to nothing."""
    longest = math.floor(limits.max_cue * 1000) if limits.max_cue is not None else None
    ends: dict[str | None, int] = {}  # each speaker's last cue's end
    for cue in cues:
        cue.start_ms = min(max(cue.start_ms, ends.get(cue.speaker, 0)), duration_ms)
        cue.end_ms = min(max(cue.end_ms, cue.start_ms), duration_ms)
        if longest is not None:
            cue.end_ms = min(cue.end_ms, cue.start_ms + longest)
        ends[cue.speaker] = cue.end_ms
    previous_end = 0
    for i, cue in enumerate(cues):
        characters = len(cue.text.replace("\n", ""))
        reading = characters / limits.cps if limits.cps else 0.0
        need = _ms(max(limits.min_cue, reading))
        room = cues[i + 1].start_ms if i + 1 < len(cues) else duration_ms
        cap = room if longest is None else min(room, cue.start_ms + longest)
        cue.end_ms = max(cue.end_ms, min(cue.start_ms + need, cap))
        if longest is not None:
            need = min(need, longest)
        if cue.end_ms - cue.start_ms < need:  # lead in earlier, into the gap before it
            cue.start_ms = min(cue.start_ms, max(previous_end, cue.end_ms - need))
        previous_end = cue.end_ms


def word_starts(cue: Cue) -> list[int]:
    """When each of the cue's tokens is spoken, in ms, increasing and within the cue."""
    starts, at = [], cue.start_ms
    for token in cue.tokens:
        at = min(max(_ms(token.start), at), cue.end_ms)
        starts.append(at)
    return starts
