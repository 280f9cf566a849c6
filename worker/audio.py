"""Decoding an upload as a stream of 16 kHz mono samples, never the whole file at once.

The samples are exactly those of faster-whisper's `decode_audio` (the same frame grouping and
s16 resampler), so a recording decoded here transcribes as it would there; but they arrive in
blocks of a few seconds, so memory does not grow with the recording's length, and counting them
is what holds the duration limit: a container may declare 5 s and hold two hours.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import av
import numpy as np

from shared.errors import DecodeError, DurationExceeded, UnsupportedMedia, short_reason
from shared.media.opening import MediaSource, open_media

SAMPLE_RATE = 16000
# Source samples gathered before each resampling step, as faster-whisper's `decode_audio`.
_GROUP_SAMPLES = 500_000


def pcm_blocks(path: MediaSource, max_seconds: float, channel: int | None = None
               ) -> Iterator[np.ndarray]:
    """The upload's audio as consecutive int16 blocks at 16 kHz mono: all channels mixed, or
    the one `channel` alone (`diarize=channels`).

    Raises `DurationExceeded` as soon as more than `max_seconds` have been decoded, and
    `DecodeError` when the file cannot be read (it was probed by the API, so it should)."""
    limit = int(max_seconds * SAMPLE_RATE)
    decoded = 0
    try:
        with open_media(path) as container:
            if not container.streams.audio:
                raise DecodeError("The file has no audio stream.")
            stream = container.streams.audio[0]
            resampler = _resampler(stream, channel)
            frames = _grouped(_valid(container.decode(stream)))
            for frame in itertools.chain(frames, [None]):
                for out in resampler.resample(frame):
                    planes = out.to_ndarray()
                    block = planes[channel] if channel is not None else planes.reshape(-1)
                    decoded += block.size
                    if decoded > limit:
                        raise DurationExceeded(
                            f"The recording is longer than the limit of {max_seconds:.0f} s."
                        )
                    yield block
    except UnsupportedMedia as exc:
        raise DecodeError(exc.message) from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise DecodeError(f"The audio could not be decoded ({short_reason(exc)}).") from exc


def _resampler(stream: av.AudioStream, channel: int | None) -> av.AudioResampler:
    """Mono, or planar in the stream's own layout so that each channel is a row of its own."""
    if channel is None:
        return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    if not 0 <= channel < stream.channels:
        raise DecodeError(f"The recording has no channel {channel}.")
    return av.AudioResampler(format="s16p", layout=stream.layout, rate=SAMPLE_RATE)


def to_float(samples: np.ndarray) -> np.ndarray:
    """int16 samples as the float32 array faster-whisper takes."""
    return samples.astype(np.float32) / 32768.0


def _valid(frames: Iterable[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    """Skip frames FFmpeg cannot decode, as faster-whisper does."""
    iterator = iter(frames)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _grouped(frames: Iterable[av.AudioFrame]) -> Iterator[av.AudioFrame]:
    fifo = av.AudioFifo()
    for frame in frames:
        frame.pts = None  # timestamps are not trusted; samples are counted instead
        fifo.write(frame)
        if fifo.samples >= _GROUP_SAMPLES and (group := fifo.read()) is not None:
            yield group
    if fifo.samples > 0 and (rest := fifo.read()) is not None:
        yield rest
