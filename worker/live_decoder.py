"""Incremental decoding of a live stream on a rolling buffer (the policy of `agreement.py`).

Audio is taken into the buffer in steps (the model's live step at least: its catalogue entry's
`live_step_seconds`, else the setting; `live_max_step_seconds` at most, so that a client ahead of
real time is worked through, never skipped) and the whole buffer is decoded after each step,
prompted with the confirmed text that has already left it. Confirmed words are grouped into
final segments at a sentence's end, at a pause in speech (`live_pause_seconds` between a word
and the next, or after the last word with no speech there by VAD), or once they span
`live_segment_seconds` (cut at the last comma, if any). The buffer is trimmed once it is longer
than `live_buffer_seconds`: at the end of a decoded segment that is wholly confirmed, else at
the last confirmed word; a buffer in which nothing is confirmed for two buffers' length (music,
noise) has its hypothesis settled and is cut, so it stays within Whisper's 30 s window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.config import Settings
from shared.schemas import Segment, Word
from worker.agreement import LocalAgreement, TimedWord
from worker.speech import speech_regions

log = logging.getLogger(__name__)

RATE = 16_000
PROMPT_CHARS = 200
# Latin and CJK (ideographic and full-width) sentence and clause marks.
SENTENCE_ENDS = (".", "?", "!", "\u3002", "\uff1f", "\uff01")
CLAUSE_ENDS = (",", ";", ":", "\uff0c", "\u3001")
# Speech this far past a word's end is still taken for the word (its end is loosely timed).
PAUSE_EDGE_SECONDS = 0.2


@dataclass
class Hypothesis:
    """One decode of the buffer, its times relative to the buffer's start."""

    words: list[TimedWord]
    segment_ends: list[float]
    language: str | None


# (audio as float32 at 16 kHz, language or None to detect, prompt) -> its hypothesis
Decode = Callable[[np.ndarray, str | None, str], Hypothesis]


@dataclass
class Update:
    """What one step settled (final segments) and what is still open (the partial)."""

    finals: list[Segment] = field(default_factory=list)
    partial: list[TimedWord] = field(default_factory=list)


def whisper_decode(model: Any, task: str, settings: Settings) -> Decode:
    """A `Decode` on the worker's faster-whisper model."""

    def decode(audio: np.ndarray, language: str | None, prompt: str) -> Hypothesis:
        segments, info = model.transcribe(
            audio, language=language, task=task, beam_size=settings.live_beam_size,
            word_timestamps=True, vad_filter=settings.live_vad_filter,
            condition_on_previous_text=False, initial_prompt=prompt or None,
            # One decode at temperature 0: the fallback's retries (up to six decodes when a
            # buffer's text looks unlikely, as a buffer cut mid-word often does) would cost
            # seconds, and the next step decodes the buffer again anyway.
            temperature=0.0,
        )
        words: list[TimedWord] = []
        ends: list[float] = []
        for segment in segments:
            ends.append(segment.end)
            words += [TimedWord(w.start, w.end, w.word, w.probability)
                      for w in segment.words or []]
        return Hypothesis(words, ends, info.language)

    return decode


class StreamingTranscriber:
    """A session's buffer, agreement and segments."""

    def __init__(self, decode: Decode, settings: Settings, language: str | None,
                 word_timestamps: bool, step_seconds: float | None = None) -> None:
        self.decode = decode
        self.settings = settings
        self.step_seconds = step_seconds or settings.live_step_seconds
        self.language = language
        self.word_timestamps = word_timestamps
        self.agreement = LocalAgreement()
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0.0  # the buffer's start on the stream's clock
        self.pending = np.zeros(0, dtype=np.float32)  # received, not in the buffer yet
        self.received = 0  # samples
        self._open: list[TimedWord] = []  # confirmed, not yet in a final segment
        self._confirmed: list[TimedWord] = []  # the latest confirmed words, for the prompt
        self._next_id = 0
        self._floor = 0.0  # the last confirmed word's end

    @property
    def stream_seconds(self) -> float:
        return self.received / RATE

    @property
    def backlog_seconds(self) -> float:
        return len(self.pending) / RATE

    @property
    def ready(self) -> bool:
        return self.backlog_seconds >= self.step_seconds

    def append(self, samples: np.ndarray) -> None:
        """Add 16 kHz int16 samples that just arrived."""
        self.received += len(samples)
        self.pending = np.concatenate([self.pending, samples.astype(np.float32) / 32768.0])

    def step(self) -> Update:
        """Take in the next step of audio, decode the buffer, confirm what two decodes agree on."""
        take = int(self.settings.live_max_step_seconds * RATE)
        self.buffer = np.concatenate([self.buffer, self.pending[:take]])
        self.pending = self.pending[take:]
        started = time.perf_counter()
        hypothesis = self.decode(self.buffer, self.language, self._prompt())
        log.debug("live step", extra={
            "event": "live_step", "buffer_seconds": round(len(self.buffer) / RATE, 2),
            "decode_seconds": round(time.perf_counter() - started, 3)})
        shifted = [TimedWord(w.start + self.offset, w.end + self.offset, w.text, w.probability)
                   for w in hypothesis.words]
        agreed = self.agreement.agree(shifted)
        if agreed and self.language is None:
            self.language = hypothesis.language  # detected once, then kept
        self._take(agreed)
        self._trim([end + self.offset for end in hypothesis.segment_ends])
        return Update(self._finals(), self._open + self.agreement.tentative)

    def finish(self) -> Update:
        """Decode what is left and confirm everything: the stream has ended."""
        finals: list[Segment] = []
        while len(self.pending):
            finals += self.step().finals
        return Update(finals + self.settle().finals)

    def settle(self) -> Update:
        """Confirm the last hypothesis as it is, without decoding (the session ends early)."""
        self._take(self.agreement.flush())
        return Update(self._finals(everything=True))

    def _take(self, words: list[TimedWord]) -> None:
        last = self._floor
        for word in words:
            start = max(word.start, last)  # word timings may overlap a little; times only grow
            word = TimedWord(start, max(word.end, start), word.text, word.probability)
            last = word.end
            self._open.append(word)
            self._confirmed.append(word)
        self._floor = last
        del self._confirmed[:-100]

    def _prompt(self) -> str:
        before = [w.text for w in self._confirmed if w.end <= self.offset]
        return "".join(before).strip()[-PROMPT_CHARS:]

    def _trim(self, segment_ends: list[float]) -> None:
        limit = self.settings.live_buffer_seconds
        length = len(self.buffer) / RATE
        if length <= limit:
            return
        done = self.agreement.confirmed_end
        ends = [end for end in segment_ends[:-1] if self.offset < end <= done]
        cut = ends[-1] if ends else (done if done > self.offset else None)
        if cut is None and length > 2 * limit - self.settings.live_max_step_seconds:
            self._take(self.agreement.flush())
            cut = max(self.agreement.confirmed_end, self.offset + length - limit)
        if cut is not None:
            samples = min(len(self.buffer), int((cut - self.offset) * RATE))
            self.buffer = self.buffer[samples:]
            self.offset += samples / RATE

    def _finals(self, everything: bool = False) -> list[Segment]:
        finals = []
        while self._open:
            cut = next((i for i, w in enumerate(self._open)
                        if w.text.rstrip().endswith(SENTENCE_ENDS)), None)
            if cut is None:
                cut = self._pause()
            if cut is None:
                span = self._open[-1].end - self._open[0].start
                if not everything and span < self.settings.live_segment_seconds:
                    break
                clauses = [i for i, w in enumerate(self._open)
                           if w.text.rstrip().endswith(CLAUSE_ENDS)]
                cut = clauses[-1] if clauses and not everything else len(self._open) - 1
            finals.append(self._segment(self._open[:cut + 1]))
            del self._open[:cut + 1]
        return finals

    def _pause(self) -> int | None:
        """The first open word that the speaker paused after, if any: the next word (confirmed
        or not) starts `live_pause_seconds` or more after it ends, or the buffer runs on that
        long past the last word and Silero VAD hears no speech there (Whisper often leaves out
        the words at a buffer's end, so no word there alone is no pause)."""
        following = [w.start for w in self._open[1:] + self.agreement.tentative[:1]]
        pause = self.settings.live_pause_seconds
        for i, word in enumerate(self._open):
            if i < len(following):
                if following[i] - word.end >= pause:
                    return i
            elif self._quiet_after(word.end, pause):
                return i
        return None

    def _quiet_after(self, moment: float, pause: float) -> bool:
        """Whether the buffer holds `pause` seconds or more after `moment` with no speech
        beyond the word's loosely timed end (`PAUSE_EDGE_SECONDS`)."""
        tail = self.buffer[max(0, int((moment - self.offset) * RATE)):]
        if len(tail) < pause * RATE:
            return False
        regions = speech_regions((tail * 32767).astype(np.int16))
        return all(end <= PAUSE_EDGE_SECONDS * RATE for _, end in regions)

    def _segment(self, words: list[TimedWord]) -> Segment:
        segment = Segment(
            id=self._next_id, start=round(words[0].start, 3), end=round(words[-1].end, 3),
            text="".join(w.text for w in words),
            words=[Word(start=round(w.start, 3), end=round(w.end, 3), word=w.text,
                        probability=round(w.probability, 4)) for w in words]
            if self.word_timestamps else None,
        )
        self._next_id += 1
        return segment
