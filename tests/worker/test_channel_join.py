"""A call's channels decoded as one stream (`worker/channel_join.py`): times taken back to
their channel across a join, a segment that spans one cut at the word where the channel
changes. Pure logic, on made-up segments."""

from __future__ import annotations

from shared.schemas import Segment, Sound, Word
from worker.channel_join import (
    JOIN_SECONDS,
    channel_at,
    per_channel,
    per_channel_sounds,
    per_channel_spans,
)

# Two channels of 10 s: channel 1 starts in the stream after the join's silence.
STARTS, LENGTHS = [0.0, 10.0 + JOIN_SECONDS], [10.0, 10.0]


def segment(start: float, end: float, words: list[tuple[float, float, str]]) -> Segment:
    return Segment(id=0, start=start, end=end, text="".join(w for _, _, w in words),
                   words=[Word(start=a, end=b, word=w, probability=0.9) for a, b, w in words])


def test_a_time_belongs_to_the_channel_whose_part_holds_it_or_the_nearer_across_a_join(
        ) -> None:
    times = (-1.0, 0.0, 9.9, 10.9, 11.1, 12.0, 21.9, 30.0)
    assert [channel_at(STARTS, LENGTHS, t) for t in times] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_a_segment_spanning_the_join_is_cut_where_the_channel_changes() -> None:
    spanning = segment(8.5, 13.0, [(8.5, 9.0, " the"), (9.0, 9.8, " end."),
                                   (12.1, 12.5, " If"), (12.5, 13.0, " the")])
    left, right = per_channel([spanning], STARTS, LENGTHS)
    assert [(s.start, s.end, s.text) for s in left] == [(8.5, 9.8, " the end.")]
    assert [(s.start, s.end, s.text) for s in right] == [(0.1, 1.0, " If the")]
    assert [(w.start, w.end, w.word) for w in right[0].words or []] == [
        (0.1, 0.5, " If"), (0.5, 1.0, " the")]
    assert all(w.speaker is None for s in left + right for w in s.words or [])


def test_segments_each_side_of_the_join_keep_their_words_on_their_own_clock() -> None:
    found = per_channel([segment(1.0, 2.0, [(1.0, 2.0, " Hello.")]),
                         segment(13.0, 14.5, [(13.0, 14.5, " Hi.")])], STARTS, LENGTHS)
    assert [[(s.start, s.end, s.text) for s in side] for side in found] == [
        [(1.0, 2.0, " Hello.")], [(1.0, 2.5, " Hi.")]]


def test_a_segment_without_words_goes_by_its_middle_and_stays_within_its_channel() -> None:
    bare = Segment(id=0, start=11.5, end=16.0, text=" Hi.", words=None)
    left, right = per_channel([bare], STARTS, LENGTHS)
    assert (left, [(s.start, s.end) for s in right]) == ([], [(0.0, 4.0)])


def test_speech_and_sounds_are_taken_back_to_their_channel() -> None:
    assert per_channel_spans([(9.0, 10.0), (12.0, 13.5)], STARTS, LENGTHS) == [
        [(9.0, 10.0)], [(0.0, 1.5)]]
    music = Sound(start=15.0, end=17.0, label="music", confidence=0.8)
    assert per_channel_sounds(None, STARTS, LENGTHS) == [None, None]
    left, right = per_channel_sounds([music], STARTS, LENGTHS)
    assert (left, [(s.start, s.end) for s in right or []]) == ([], [(3.0, 5.0)])


def test_a_stream_cut_short_in_the_first_channel_maps_what_it_has() -> None:
    found = per_channel([segment(1.0, 2.0, [(1.0, 2.0, " Hello.")])], [0.0], [4.5])
    assert [[(s.start, s.end) for s in side] for side in found] == [[(1.0, 2.0)]]


def test_a_first_word_timed_early_into_the_join_stays_with_its_channel() -> None:
    # Whisper starts "If" 0.35 s into the silence before its channel (a real decoding's times).
    spanning = segment(8.5, 12.5, [(8.5, 9.8, " printing."), (11.65, 12.13, " If"),
                                   (12.13, 12.5, " the")])
    left, right = per_channel([spanning], STARTS, LENGTHS)
    assert [s.text for s in left] == [" printing."]
    assert [(w.start, w.end, w.word) for w in right[0].words or []] == [
        (0.0, 0.13, " If"), (0.13, 0.5, " the")]
