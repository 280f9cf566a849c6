"""Cutting a recording into windows at silences: the one way Verbatim splits audio.

A window is at most `max_seconds` long and ends, where it can, in the middle of the longest
pause that voice-activity detection finds in the last part of it (`search_seconds`), so no word
is cut in two. Windows are produced while the audio streams in, holding at most one window and
the block being read, so memory stays flat however long the recording is: a four-hour file costs
what a ten-minute one does. The decoding of a window never depends on another, which is what lets
windows be transcribed one after another in bounded memory today and by several workers at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from worker.audio import SAMPLE_RATE

# (start, end) sample offsets of the speech in some samples (voice-activity detection).
SpeechFinder = Callable[[np.ndarray], list[tuple[int, int]]]


@dataclass(frozen=True)
class Window:
    """`samples` (int16, 16 kHz mono) starting `start` samples into the recording."""

    index: int
    start: int
    samples: np.ndarray

    @property
    def start_seconds(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return (self.start + self.samples.size) / SAMPLE_RATE


def windows(
    blocks: Iterable[np.ndarray], max_seconds: float, search_seconds: float,
    find_speech: SpeechFinder,
) -> Iterator[Window]:
    """Consecutive windows covering every sample of `blocks`, each at most `max_seconds`,
    cut where `find_speech` finds none."""
    size = int(max_seconds * SAMPLE_RATE)
    search = min(int(search_seconds * SAMPLE_RATE), size // 2)
    pending: list[np.ndarray] = []
    held = start = index = 0
    for block in blocks:
        pending.append(block)
        held += block.size
        while held > size:
            buffer = np.concatenate(pending)
            cut = _cut_point(buffer, size, search, find_speech)
            yield Window(index, start, buffer[:cut])
            pending, held = [buffer[cut:]], buffer.size - cut
            start, index = start + cut, index + 1
    if held or index == 0:
        buffer = np.concatenate(pending) if pending else np.zeros(0, np.int16)
        yield Window(index, start, buffer)


def _cut_point(buffer: np.ndarray, size: int, search: int, find_speech: SpeechFinder) -> int:
    """Where to end a window of at most `size` samples: the middle of the longest pause in its
    last `search` samples; `size` itself when that stretch is all speech or all silence."""
    region_start = size - search
    speech = find_speech(buffer[region_start:size])
    if not speech:
        return size
    edges = [0, *(bound for region in speech for bound in region), search]
    pauses = [(edges[i + 1] - edges[i], edges[i]) for i in range(0, len(edges), 2)]
    length, begin = max(pauses)
    return region_start + begin + length // 2 if length > 0 else size


def split_by_language(
    window: Window, regions: list[tuple[int, int]], languages: list[str]
) -> list[tuple[Window, str]]:
    """`window` as consecutive parts, one for each run of its speech `regions` (sample offsets
    in the window) in one language, cut in the middle of the pause where the language changes:
    how the code-switching mode hears each language on its own."""
    parts: list[tuple[Window, str]] = []
    begin = 0
    for before, after, language, following in zip(
        regions, regions[1:], languages, languages[1:], strict=False
    ):
        if language != following:
            cut = (before[1] + after[0]) // 2
            parts.append((Window(window.index, window.start + begin, window.samples[begin:cut]),
                          language))
            begin = cut
    tail = Window(window.index, window.start + begin, window.samples[begin:])
    return [*parts, (tail, languages[-1])]
