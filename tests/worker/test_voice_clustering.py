"""The clustering of speaker embeddings and the cutting of speech into pieces (pure logic;
the embedder itself is exercised on real speech by tests/e2e/test_voices.py)."""

from __future__ import annotations

import numpy as np
import pytest

from worker.voices import SAMPLE_RATE, Piece, _cut, cluster


def _pieces(*speakers: int) -> list[Piece]:
    """A piece per entry, each near its speaker's direction in 8 dimensions."""
    rng = np.random.default_rng(7)
    found = []
    for i, who in enumerate(speakers):
        vector = np.eye(8)[who] + rng.normal(0, 0.05, 8)
        found.append(Piece(i * 2.0, i * 2.0 + 2, list(vector / np.linalg.norm(vector))))
    return found


def test_the_count_is_estimated_and_labels_follow_first_speech() -> None:
    assert cluster(_pieces(3, 3, 5, 3, 1, 5, 1)) == [0, 0, 1, 0, 2, 1, 2]


def test_a_given_count_or_bounds_are_kept() -> None:
    found = _pieces(0, 1, 2, 0, 1, 2)
    assert len(set(cluster(found))) == 3
    assert len(set(cluster(found, speakers=2))) == 2
    assert len(set(cluster(found, most=2))) == 2
    assert len(set(cluster(_pieces(0, 0, 0, 0), least=2))) == 2
    assert cluster(found, speakers=1) == [0] * 6
    assert cluster([]) == []


@pytest.mark.parametrize(("regions", "expected"), [
    ([(0, 5 * SAMPLE_RATE)], [(0, 32000), (32000, 64000), (64000, 80000)]),
    ([(0, int(4.5 * SAMPLE_RATE))], [(0, 32000), (32000, 72000)]),  # a short tail joins
    ([(100, 8100)], [(100, 8100)]),  # a short region alone is one piece
])
def test_speech_is_cut_into_short_pieces(regions: list[tuple[int, int]],
                                         expected: list[tuple[int, int]]) -> None:
    assert _cut(regions) == expected


def test_a_stray_piece_joins_the_nearest_speaker_when_the_count_is_estimated() -> None:
    found = _pieces(0, 0, 0, 6, 1, 1, 1)
    # Speaker 6 says one piece of 2 s, less than MIN_SPEAKER_SECONDS: not a speaker of its own.
    assert len(set(cluster(found))) == 2
    assert len(set(cluster(found, speakers=3))) == 3  # a given count is kept
