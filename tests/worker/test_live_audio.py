"""Decoding a live stream as it arrives (`worker/live_audio.py`): WebM/Opus as a browser's
MediaRecorder sends it and raw PCM at several rates, made from real speech, fed in chunks cut
at arbitrary places, compared with the same recording decoded whole."""

from __future__ import annotations

import io
import itertools

import av
import numpy as np
import pytest
from support import DATA

from worker.audio import SAMPLE_RATE, pcm_blocks
from worker.live_audio import LiveDecoder, UndecodableAudio, decoder_for

JFK = DATA / "jfk.flac"


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """jfk.flac decoded whole, as a finished job decodes it."""
    return np.concatenate(list(pcm_blocks(JFK, max_seconds=60)))


@pytest.fixture(scope="module")
def webm() -> bytes:
    """jfk.flac as a live WebM/Opus stream (clusters of unknown size, as MediaRecorder's)."""
    out = io.BytesIO()
    with av.open(JFK) as src, av.open(out, "w", format="webm", options={"live": "1"}) as dst:
        stream = dst.add_stream("libopus", rate=48000, layout="mono")
        for frame in src.decode(audio=0):
            frame.pts = None
            dst.mux(stream.encode(frame))
        dst.mux(stream.encode(None))
    return out.getvalue()


def chunks(data: bytes, seed: int, largest: int = 6000) -> list[bytes]:
    """`data` cut at random places, so chunks end inside headers and blocks."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, largest, size=len(data)))
    bounds = [0, *cuts[cuts < len(data)].tolist(), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def fed(decoder: LiveDecoder, parts: list[bytes]) -> np.ndarray:
    """All the samples of `parts` fed in order, then of closing."""
    return np.concatenate([*(decoder.feed(part) for part in parts), decoder.close()])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n].astype(float), b[:n].astype(float))[0, 1])


def pcm_at(rate: int) -> bytes:
    """jfk.flac as raw little-endian 16-bit mono at `rate`."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(JFK) as src:
        frames = [*src.decode(audio=0), None]
        blocks = [out.to_ndarray().reshape(-1) for f in frames for out in resampler.resample(f)]
    return np.concatenate(blocks).astype("<i2").tobytes()


@pytest.mark.parametrize("seed", [1, 2])
def test_webm_opus_chunks_decode_to_the_recording(
    webm: bytes, reference: np.ndarray, seed: int
) -> None:
    decoder = decoder_for("webm_opus", None)
    parts = chunks(webm, seed)
    half = len(parts) // 2
    early = [decoder.feed(part) for part in parts[:half]]
    late = [decoder.feed(part) for part in parts[half:]]
    rest = decoder.close()
    samples = np.concatenate([*early, *late, rest])
    assert abs(samples.size - reference.size) < 0.03 * SAMPLE_RATE
    assert correlation(samples, reference) > 0.99
    # Samples come out as their chunks go in, not when the stream ends.
    assert sum(block.size for block in early) > 0.35 * reference.size
    assert rest.size < 0.1 * SAMPLE_RATE


def test_a_header_split_into_single_bytes_still_decodes(
    webm: bytes, reference: np.ndarray
) -> None:
    decoder = decoder_for("webm_opus", None)
    samples = fed(decoder, [*(webm[i:i + 1] for i in range(300)), webm[300:]])
    assert correlation(samples, reference) > 0.99


@pytest.mark.parametrize(
    "garbage",
    [
        np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes(),
        b"this is not a media recorder chunk\n" * 20,
    ],
    ids=["random-bytes", "text"],
)
def test_garbage_is_undecodable(garbage: bytes) -> None:
    decoder = decoder_for("webm_opus", None)
    with pytest.raises(UndecodableAudio) as raised:
        fed(decoder, chunks(garbage, seed=4, largest=4000))
    assert raised.value.code == "decode_error"


def test_a_stream_without_its_header_is_undecodable(webm: bytes) -> None:
    decoder = decoder_for("webm_opus", None)
    with pytest.raises(UndecodableAudio) as raised:
        fed(decoder, [webm[len(webm) // 2:]])
    assert raised.value.code == "decode_error"


@pytest.mark.parametrize("kept", [0, 40, 200])
def test_a_stream_stopped_within_its_header_is_empty(webm: bytes, kept: int) -> None:
    """Stop pressed before the recorder's first chunk, or inside its header."""
    assert fed(decoder_for("webm_opus", None), [webm[:kept]]).size == 0


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_pcm_at_any_rate_becomes_16_khz(rate: int, reference: np.ndarray) -> None:
    data = pcm_at(rate)
    decoder = decoder_for("pcm_s16le", rate)
    # 333-byte chunks: every other chunk ends in the middle of a sample.
    samples = fed(decoder, [data[i:i + 333] for i in range(0, len(data), 333)])
    expected = round(len(data) / 2 * SAMPLE_RATE / rate)
    assert abs(samples.size - expected) <= 2
    assert correlation(samples, reference) > 0.99


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("pcm_s16le", None), ("pcm_s16le", 7999), ("pcm_s16le", 48001), ("mp3", 16000), ("", None)],
)
def test_unknown_encodings_and_rates_are_refused(encoding: str, rate: int | None) -> None:
    with pytest.raises(UndecodableAudio) as raised:
        decoder_for(encoding, rate)
    assert raised.value.code == "decode_error"
