"""Decoders of a live session's audio frames into 16 kHz mono samples.

`decoder_for(encoding, sample_rate)` gives one `LiveDecoder` per session: `feed(frame)` returns
the samples that frame makes available, `close()` the rest. This version reads raw PCM16
(`pcm_s16le`, little-endian, mono, at the session's rate), resampled by linear interpolation.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from shared.errors import DecodeError

RATE = 16_000


class UndecodableAudio(DecodeError):
    """Frames that are not audio of the session's encoding."""


class LiveDecoder(Protocol):
    def feed(self, data: bytes) -> np.ndarray: ...

    def close(self) -> np.ndarray: ...


class PcmDecoder:
    """Little-endian 16-bit mono PCM at `sample_rate`, resampled to 16 kHz."""

    def __init__(self, sample_rate: int) -> None:
        self.rate = sample_rate
        self._odd = b""  # a frame may split a sample
        self._carry = np.zeros(0, dtype=np.int16)  # input samples still needed
        self._base = 0  # the index of `_carry[0]` in the whole input
        self._made = 0  # output samples made so far

    def feed(self, data: bytes) -> np.ndarray:
        data = self._odd + data
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
        if self.rate == RATE:
            return samples
        return self._resample(samples)

    def close(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int16)

    def _resample(self, samples: np.ndarray) -> np.ndarray:
        """Output sample k lies at input position k * rate / 16000 of the whole stream, so
        frames of any size give the same samples as the stream resampled at once."""
        carry = np.concatenate([self._carry, samples])
        step = self.rate / RATE
        end = int((self._base + len(carry) - 1) // step) + 1  # outputs within the input so far
        positions = np.arange(self._made, end) * step - self._base
        out = np.interp(positions, np.arange(len(carry)), carry.astype(np.float32))
        self._made = end
        keep = min(len(carry), max(0, int(end * step) - self._base))
        self._carry, self._base = carry[keep:], self._base + keep
        return np.round(out).astype(np.int16)


def decoder_for(encoding: str, sample_rate: int | None) -> LiveDecoder:
    """The decoder of a session's frames."""
    if encoding == "pcm_s16le" and sample_rate:
        return PcmDecoder(sample_rate)
    raise UndecodableAudio(f"Audio encoded as {encoding!r} cannot be decoded here.")
