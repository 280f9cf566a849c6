"""Conversations with known turns, built from real speech of different people (issue 21):
each turn one whole utterance of one reader, turns apart by a short pause, some speakers
coming back after others. Used by tests/e2e/test_voices.py and bench/diarization_bench.py;
built at set-up, never committed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from faster_whisper import decode_audio

DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "audio"
RATE = 16000
PAUSE_SECONDS = (0.5, 0.7, 0.6, 0.45)  # between turns, in turn


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float


# Turns as (speaker, file). LibriSpeech readers 1089 and 2412 (CC BY 4.0) and LJ Speech's
# one reader (public domain), all in tests/data.
TWO = [("1089", "1089-134686-0000.flac"), ("LJ", "LJ001-0001.flac"),
       ("1089", "1089-134686-0001.flac"), ("LJ", "LJ001-0003.flac")]
THREE = [("1089", "1089-134686-0000.flac"), ("LJ", "LJ001-0005.flac"),
         ("2412", "2412-153948-0000.flac"), ("1089", "1089-134686-0001.flac"),
         ("LJ", "LJ001-0007.flac")]


def build(turns: list[tuple[str, Path]], out: Path) -> list[Turn]:
    """Write the turns, one after another with pauses, as 16 kHz FLAC at `out`; return the
    reference turns (the speech of each, its leading and trailing silence left out)."""
    pieces, reference, at = [], [], 0.0
    for i, (speaker, path) in enumerate(turns):
        if i:
            pause = np.zeros(int(PAUSE_SECONDS[i % len(PAUSE_SECONDS)] * RATE), np.float32)
            pieces.append(pause)
            at += pause.size / RATE
        samples = decode_audio(str(path), sampling_rate=RATE)
        first, last = _spoken(samples)
        reference.append(Turn(speaker, round(at + first, 3), round(at + last, 3)))
        pieces.append(samples)
        at += samples.size / RATE
    _write_flac(np.concatenate(pieces), out)
    return reference


def _spoken(samples: np.ndarray) -> tuple[float, float]:
    """Seconds from the start to the first and the last sample louder than -40 dBFS."""
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return (loud[0] / RATE, (loud[-1] + 1) / RATE) if loud.size else (0.0, 0.0)


def _write_flac(samples: np.ndarray, path: Path) -> None:
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=RATE, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def in_data(turns: list[tuple[str, str]]) -> list[tuple[str, Path]]:
    return [(speaker, DATA / name) for speaker, name in turns]
