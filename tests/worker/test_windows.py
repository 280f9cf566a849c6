"""Cutting recordings into windows at pauses (`worker/windows.py`), on synthetic samples with a
stand-in speech finder: which samples are speech is the input here, not what is tested."""

from __future__ import annotations

import numpy as np
import pytest

from worker.audio import SAMPLE_RATE
from worker.windows import Window, windows

RATE = SAMPLE_RATE


def blocks(total_seconds: float, block_seconds: float = 7.0) -> list[np.ndarray]:
    """A recording whose sample i holds i % 30000, so any lost or repeated sample shows."""
    samples = (np.arange(int(total_seconds * RATE)) % 30000).astype(np.int16)
    step = int(block_seconds * RATE)
    return [samples[i:i + step] for i in range(0, samples.size, step)]


def joined(found: list[Window]) -> np.ndarray:
    return np.concatenate([w.samples for w in found])


def test_a_short_recording_is_one_window() -> None:
    found = list(windows(blocks(20), 30, 10, find_speech=lambda s: []))
    assert [(w.index, w.start, w.samples.size) for w in found] == [(0, 0, 20 * RATE)]


def test_an_empty_recording_is_one_empty_window() -> None:
    found = list(windows([], 30, 10, find_speech=lambda s: []))
    assert [(w.index, w.start, w.samples.size) for w in found] == [(0, 0, 0)]


def test_windows_cover_every_sample_once_in_order() -> None:
    source = np.concatenate(blocks(95))
    found = list(windows(blocks(95), 30, 10, find_speech=lambda s: []))
    assert np.array_equal(joined(found), source)
    assert [w.index for w in found] == list(range(len(found)))
    assert all(w.samples.size <= 30 * RATE for w in found)
    starts = [w.start for w in found]
    assert starts == [sum(w.samples.size for w in found[:i]) for i in range(len(found))]


def test_all_speech_or_all_silence_cuts_at_the_longest_window() -> None:
    for finder in (lambda s: [], lambda s: [(0, s.size)]):
        found = list(windows(blocks(70), 30, 10, find_speech=finder))
        assert [w.samples.size for w in found] == [30 * RATE, 30 * RATE, 10 * RATE]


def test_a_window_ends_in_the_middle_of_the_longest_pause_it_can_reach() -> None:
    # The search covers 20..30 s of each window: a short pause at 22 s, a longer one at 26 s.
    def finder(samples: np.ndarray) -> list[tuple[int, int]]:
        return [(0, 2 * RATE), (int(2.2 * RATE), 6 * RATE), (int(7.5 * RATE), samples.size)]

    found = list(windows(blocks(50), 30, 10, find_speech=finder))
    # 20 s + the middle of the 6.0..7.5 s pause of the search region.
    assert found[0].samples.size == 20 * RATE + int(6.75 * RATE)
    assert found[1].start == found[0].samples.size
    assert found[0].end_seconds == pytest.approx(26.75)
    assert np.array_equal(joined(found), np.concatenate(blocks(50)))


def test_a_trailing_pause_is_cut_in_its_middle() -> None:
    found = list(windows(blocks(40), 30, 10, find_speech=lambda s: [(0, 4 * RATE)]))
    assert found[0].samples.size == 20 * RATE + 7 * RATE  # middle of 4..10 s of the region
