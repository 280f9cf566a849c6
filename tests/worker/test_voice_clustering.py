"""The clustering of speaker embeddings and the cutting of speech into pieces (pure logic),
and the real embedder on two speakers of Debian's pocketsphinx-testdata (the service's whole
path is exercised on real speech by tests/e2e/test_voices.py)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import numpy as np
import pytest
from conversations import SPHINX, SPHINX_TWO, build, in_data
from support import APT_LOCK, SPHINX_PACKAGE, apt_install

from shared.schemas import Segment
from worker.audio import pcm_blocks
from worker.speech import to_speech_edges
from worker.voices import (
    SAMPLE_RATE,
    DVectorEmbedder,
    Piece,
    _cut,
    cluster,
    pieces,
    speech_of,
)
from worker.windows import Window


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


def test_pieces_that_meet_are_one_stretch_of_speech() -> None:
    found = [Piece(0.0, 2.0, []), Piece(2.0, 3.1, []), Piece(4.0, 6.0, [])]
    assert speech_of(found) == [(0.0, 3.1), (4.0, 6.0)]


def _segment(start: float, end: float, who: str) -> Segment:
    return Segment(id=0, start=start, end=end, text=" x", speaker=who)


def test_turns_reach_the_edges_of_their_speech_but_not_over_a_neighbour() -> None:
    segments = [_segment(0.5, 4.2, "S1"), _segment(4.6, 7.0, "S1"), _segment(7.3, 9.0, "S2"),
                _segment(9.5, 9.8, "S2")]
    speech = [(0.3, 4.9), (5.0, 7.6), (7.2, 9.3)]
    fitted = [(s.start, s.end) for s in to_speech_edges(segments, speech)]
    # The first ends where its speech does, then stops where the next starts (one region);
    # the third starts back at its region's start only as far as the second's end; the
    # last, outside any speech, is left as it was.
    assert fitted == [(0.3, 4.6), (4.6, 7.3), (7.3, 9.3), (9.5, 9.8)]


@pytest.fixture(scope="module")
def sphinx() -> Path:
    """Debian's pocketsphinx-testdata, installed first where missing."""
    if not (SPHINX / "cards").is_dir():
        with open(APT_LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (SPHINX / "cards").is_dir():
                apt_install(SPHINX_PACKAGE)
    return SPHINX


def test_the_embedder_tells_a_reader_from_a_card_caller(sphinx: Path, tmp_path: Path) -> None:
    """Turns of 1 to 7 s, the caller's short; the count estimated, each turn one speaker."""
    turns = build(in_data(SPHINX_TWO, sphinx), tmp_path / "two.flac")
    samples = np.concatenate(list(pcm_blocks(tmp_path / "two.flac", 60)))
    found = pieces(Window(0, 0, samples), DVectorEmbedder())
    numbers = cluster(found)
    per_turn = [{n for p, n in zip(found, numbers, strict=True)
                 if turn.start - 0.3 <= (p.start + p.end) / 2 <= turn.end + 0.3}
                for turn in turns]
    assert [len(labels) for labels in per_turn] == [1] * len(turns), per_turn
    assert [labels.pop() for labels in per_turn] == [0, 1] * (len(turns) // 2)
