"""Decoding a live stream's audio as it arrives: 16 kHz mono int16 samples, chunk by chunk.

Two encodings come over the socket. `pcm_s16le` is raw little-endian 16-bit mono at any rate
from 8 kHz to 48 kHz, resampled here. `webm_opus` is what a browser's MediaRecorder hands out:
the first chunk holds the WebM header, later ones continue its clusters, and a chunk may end
anywhere, even inside a block. FFmpeg's Matroska demuxer reads such a stream from a pipe, but
it pulls bytes rather than being pushed them, so it runs in a thread of its own that reads
from a buffer `feed` fills; `feed` then waits until that thread is starved again, so the
samples of a chunk come back from the call that brought it (no added latency), and the buffer
never holds more than one chunk.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Protocol

import av
import numpy as np

from shared.errors import DecodeError, short_reason

SAMPLE_RATE = 16000
MIN_PCM_RATE, MAX_PCM_RATE = 8000, 48000
ENCODINGS = ("pcm_s16le", "webm_opus")
# How long `feed` waits for the demuxer to take a chunk: far above its real cost (~1 ms per
# 250 ms chunk), so only a stuck decoder reaches it.
_DECODE_TIMEOUT_S = 10.0
_EMPTY = np.zeros(0, dtype=np.int16)
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # how every WebM stream begins


class UndecodableAudio(DecodeError):
    """The stream's bytes are not audio of the declared encoding (code `decode_error`)."""


class LiveDecoder(Protocol):
    def feed(self, data: bytes) -> np.ndarray:
        """The 16 kHz mono int16 samples that `data` made available (possibly none)."""
        ...

    def close(self) -> np.ndarray:
        """The samples still held back, once the stream has ended."""
        ...


def decoder_for(encoding: str, sample_rate: int | None) -> LiveDecoder:
    """A decoder for one stream; raises `UndecodableAudio` for an encoding or rate it lacks."""
    if encoding == "pcm_s16le":
        if sample_rate is None or not MIN_PCM_RATE <= sample_rate <= MAX_PCM_RATE:
            raise UndecodableAudio(
                f"pcm_s16le needs a sample_rate from {MIN_PCM_RATE} to {MAX_PCM_RATE}."
            )
        return PcmDecoder(sample_rate)
    if encoding == "webm_opus":
        return WebmOpusDecoder()
    raise UndecodableAudio(f"Unknown encoding {encoding!r}: use one of {', '.join(ENCODINGS)}.")


class _Resampler:
    """PyAV's resampler to 16 kHz mono s16; it keeps its filter state across frames."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def resample(self, frame: av.AudioFrame | None) -> np.ndarray:
        if frame is not None:
            frame.pts = None  # samples are counted, timestamps of a live stream not trusted
        blocks = [out.to_ndarray().reshape(-1) for out in self._resampler.resample(frame)]
        return np.concatenate(blocks) if blocks else _EMPTY


class PcmDecoder:
    """Raw pcm_s16le mono; an odd byte at a chunk's end waits for the next chunk."""

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._odd = b""
        self._resampler = _Resampler() if sample_rate != SAMPLE_RATE else None

    def feed(self, data: bytes) -> np.ndarray:
        data = self._odd + data
        whole = len(data) - len(data) % 2
        self._odd = data[whole:]
        samples = np.frombuffer(data[:whole], dtype="<i2").astype(np.int16)
        if self._resampler is None or samples.size == 0:
            return samples
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        return self._resampler.resample(frame)

    def close(self) -> np.ndarray:
        self._odd = b""  # half a sample is no sample
        return self._resampler.resample(None) if self._resampler is not None else _EMPTY


class _Pipe:
    """A file-like object the demuxer thread reads from; `read` blocks until bytes or the
    end arrive, and says when it has run dry, so the feeder knows all it gave was taken."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.head = b""  # the stream's first bytes
        self.ended = False
        self._starved = False
        self._cond = threading.Condition()

    def read(self, size: int = -1) -> bytes:
        with self._cond:
            while not self._buffer and not self.ended:
                self._starved = True
                self._cond.notify_all()
                self._cond.wait()
            size = len(self._buffer) if size < 0 else size
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data

    def write(self, data: bytes) -> None:
        with self._cond:
            if len(self.head) < len(_EBML_MAGIC):
                self.head = (self.head + data)[: len(_EBML_MAGIC)]
            self._buffer += data
            self._starved = False
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def wait_starved(self, done: threading.Event, timeout: float) -> bool:
        """Wait until the reader has taken every byte and asks for more (or has stopped)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._starved or done.is_set(), timeout)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class WebmOpusDecoder:
    """MediaRecorder's WebM/Opus chunks, demuxed and decoded by FFmpeg in a thread.

    `close` ends the thread; a decoder dropped without it ends its thread when collected."""

    def __init__(self) -> None:
        self._thread = _DecodingThread()
        weakref.finalize(self, self._thread.pipe.end)
        self._thread.start()

    def feed(self, data: bytes) -> np.ndarray:
        thread = self._thread
        if data and not thread.done.is_set():
            thread.pipe.write(data)
            if not thread.pipe.wait_starved(thread.done, _DECODE_TIMEOUT_S):
                raise UndecodableAudio("The audio decoder stopped answering.")
        return thread.take()

    def close(self) -> np.ndarray:
        self._thread.pipe.end()
        self._thread.join(_DECODE_TIMEOUT_S)
        return self._thread.take()


class _DecodingThread(threading.Thread):
    """Demuxes and decodes what arrives in `pipe`, keeping the samples until `take`."""

    def __init__(self) -> None:
        super().__init__(name="webm-opus-decoder", daemon=True)
        self.pipe = _Pipe()
        self.done = threading.Event()
        self._resampler = _Resampler()
        self._out: list[np.ndarray] = []
        self._error: BaseException | None = None
        self._produced = False  # whether any samples came out
        self._lock = threading.Lock()

    def take(self) -> np.ndarray:
        with self._lock:
            if isinstance(self._error, UndecodableAudio):
                raise UndecodableAudio(self._error.message)
            if self._error is not None:
                raise UndecodableAudio(
                    f"The audio could not be decoded as WebM/Opus ({short_reason(self._error)})."
                ) from self._error
            blocks, self._out = self._out, []
        return np.concatenate(blocks) if blocks else _EMPTY

    def run(self) -> None:
        try:
            for block in self._decode():
                with self._lock:
                    self._out.append(block)
                    self._produced = self._produced or bool(block.size)
        except Exception as exc:  # any decoder failure ends the stream; `take` reports it
            with self._lock:
                self._error = None if self._cut_short(exc) else exc
        finally:
            self.done.set()
            self.pipe.wake()

    def _cut_short(self, exc: Exception) -> bool:
        """A WebM stream that ended before its first block, or before its first byte (Stop
        pressed at once): no audio, not bad audio."""
        return (isinstance(exc, av.error.FFmpegError | UndecodableAudio) and self.pipe.ended
                and self.pipe.head in (_EBML_MAGIC, b"") and not self._produced)

    def _decode(self) -> Iterator[np.ndarray]:
        # Small probe sizes: the header says all there is to know, and the defaults (5 MB,
        # 5 s of analysis) would hold the first samples back for seconds.
        options = {"probesize": "4096", "analyzeduration": "0"}
        with av.open(self.pipe, mode="r", format="matroska", options=options) as container:
            if not container.streams.audio:
                raise UndecodableAudio("The stream has no audio track.")
            stream = container.streams.audio[0]
            for packet in container.demux(stream):
                for frame in _decoded(stream, packet):
                    yield self._resampler.resample(frame)
        yield self._resampler.resample(None)


def _decoded(stream: av.AudioStream, packet: av.Packet) -> list[av.AudioFrame]:
    """The packet's frames; a damaged packet is skipped, as faster-whisper's decoding does."""
    try:
        return stream.decode(packet)
    except av.error.InvalidDataError:
        return []
