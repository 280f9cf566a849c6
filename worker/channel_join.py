"""A call's channels decoded as one recording (`diarize=channels`, issue 21): channel 0's
samples, a short silence, channel 1's, and so on, and every time in that stream taken back to
its channel and the recording's clock.

Decoded one after another in one stream, the channels pay once what each would pay decoded on
its own: the language detection, and the last 30 s stretch that faster-whisper's `vad_filter`
packs a channel's speech into, only partly full (its last speech and the next channel's first
share one). The silence at each join keeps speech regions and words on one side of it; a
segment can still span a join (both sides packed into one stretch), and is cut at the word
where the channel changes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator

import numpy as np

from shared.errors import VerbatimError
from shared.media.opening import MediaSource
from shared.schemas import Segment, Sound, Transcript, Word
from shared.turns import label, split_at_changes
from worker.audio import SAMPLE_RATE, pcm_blocks
from worker.speech import Spans
from worker.transcriber import DecodedCallback, metered

# Silence between two channels in the stream: longer than the pauses that end a speech region
# (0.3 s) or that faster-whisper's `vad_filter` runs speech together over (2 s, less its
# padding), so that nothing heard straddles a join.
JOIN_SECONDS = 2.0


class ChannelStream:
    """`count` channels of `audio`, one after another, `JOIN_SECONDS` of silence between them.

    The key's daily audio is charged (`on_decoded`) for the first channel's seconds only: a
    call is charged once, however many channels it has. Where a charge is refused, the
    stream ends after that block and the error is in `stopped`."""

    def __init__(self, audio: MediaSource, count: int, max_seconds: float,
                 on_decoded: DecodedCallback | None) -> None:
        self.audio, self.count, self.max_seconds = audio, count, max_seconds
        self.on_decoded = on_decoded
        self.stopped: list[VerbatimError] = []
        # Where each channel starts in the stream, and how long it is (seconds), as read.
        self.starts: list[float] = []
        self.lengths: list[float] = []

    def blocks(self) -> Iterator[np.ndarray]:
        """The stream's int16 blocks; `starts` and `lengths` grow as each channel is read."""
        at = 0
        for channel in range(self.count):
            if channel:
                yield np.zeros(int(JOIN_SECONDS * SAMPLE_RATE), np.int16)
                at += int(JOIN_SECONDS * SAMPLE_RATE)
            self.starts.append(at / SAMPLE_RATE)
            blocks = pcm_blocks(self.audio, self.max_seconds, channel)
            if channel == 0:
                blocks = metered(blocks, self.on_decoded, self.stopped)
            size = 0
            for block in blocks:
                size += block.size
                yield block
            at += size
            self.lengths.append(size / SAMPLE_RATE)
            if self.stopped:
                return

    def expected(self, seconds: float | None) -> float | None:
        """The stream's length, for a recording probed at `seconds`."""
        return None if seconds is None else seconds * self.count + JOIN_SECONDS * (
            self.count - 1)

    def apart(self, heard: Transcript, speech: Spans) -> list[tuple[Transcript, Spans]]:
        """The stream's transcript and speech as each channel's own, on the recording's clock:
        its segments (cut where the channel changes), its length, the sounds heard in it."""
        segments = per_channel(heard.segments, self.starts, self.lengths)
        sounds = per_channel_sounds(heard.sounds, self.starts, self.lengths)
        spoken = per_channel_spans(speech, self.starts, self.lengths)
        return [(heard.model_copy(update={
            "segments": segments[k], "duration": self.lengths[k], "sounds": sounds[k],
            "text": "".join(s.text for s in segments[k]).strip()}), spoken[k])
            for k in range(len(self.lengths))]


def channel_at(starts: list[float], lengths: list[float], seconds: float) -> int:
    """The channel whose part of the stream holds `seconds`; in a join, the nearer of the two
    (Whisper times a first word early, into the silence before it)."""
    middles = [(starts[k - 1] + lengths[k - 1] + starts[k]) / 2 for k in range(1, len(lengths))]
    return bisect_right(middles, seconds)


def per_channel(segments: list[Segment], starts: list[float], lengths: list[float]
                ) -> list[list[Segment]]:
    """Each channel's segments on the recording's clock: a segment of the stream is cut at
    each word where the channel changes (`split_at_changes`), and each piece moved back by its
    channel's start, kept within the channel's length."""
    found: list[list[Segment]] = [[] for _ in lengths]
    labels = {label(k): k for k in range(len(lengths))}
    for segment in segments:
        for piece in split_at_changes(_by_word(segment, starts, lengths)):
            channel = labels[piece.speaker] if piece.speaker is not None else channel_at(
                starts, lengths, (piece.start + piece.end) / 2)
            found[channel].append(_moved(piece, starts[channel], lengths[channel]))
    return found


def per_channel_spans(speech: Spans, starts: list[float], lengths: list[float]
                      ) -> list[Spans]:
    """Each channel's part of the stream's speech, on the recording's clock."""
    return [[(max(a, begin) - begin, min(b, begin + length) - begin) for a, b in speech
             if a < begin + length and b > begin]
            for begin, length in zip(starts, lengths, strict=False)]


def per_channel_sounds(sounds: list[Sound] | None, starts: list[float], lengths: list[float]
                       ) -> list[list[Sound] | None]:
    """Each channel's sounds (by their middle) on the recording's clock; None where the job
    asked for none."""
    if sounds is None:
        return [None for _ in lengths]
    found: list[list[Sound] | None] = [[] for _ in lengths]
    for sound in sounds:
        channel = channel_at(starts, lengths, (sound.start + sound.end) / 2)
        if (kept := found[channel]) is not None:
            begin, length = starts[channel], lengths[channel]
            kept.append(sound.model_copy(update={"start": _on(sound.start, begin, length),
                                                 "end": _on(sound.end, begin, length)}))
    return found


def _by_word(segment: Segment, starts: list[float], lengths: list[float]) -> Segment:
    """The segment with each word labelled as the channel its middle is in."""
    if not segment.words:
        return segment
    return segment.model_copy(update={"words": [w.model_copy(update={
        "speaker": label(channel_at(starts, lengths, (w.start + w.end) / 2))})
        for w in segment.words]})


def _moved(segment: Segment, begin: float, length: float) -> Segment:
    """The segment (and its words, unlabelled) `begin` seconds earlier, within [0, length]."""
    words: list[Word] | None = None
    if segment.words is not None:
        words = [w.model_copy(update={"start": _on(w.start, begin, length),
                                      "end": _on(w.end, begin, length), "speaker": None})
                 for w in segment.words]
    return segment.model_copy(update={
        "start": _on(segment.start, begin, length), "end": _on(segment.end, begin, length),
        "words": words, "speaker": None})


def _on(seconds: float, begin: float, length: float) -> float:
    return round(min(max(seconds - begin, 0.0), length), 3)
