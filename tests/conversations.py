"""Conversations with known turns, built from real speech of different people (issue 21):
each turn one whole utterance of one reader, turns apart by a short pause, some speakers
coming back after others; and two-party calls, one party on each channel of a stereo file.
Used by tests/e2e/test_voices.py, tests/worker/test_channel_calls.py and
bench/diarization_bench.py; built at set-up, never committed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from faster_whisper import decode_audio

DATA = Path(__file__).resolve().parent / "data"
# Debian's pocketsphinx-testdata (BSD-2-Clause, CMU): a LibriVox reader of Sense and
# Sensibility (librivox/, 3 to 7 s utterances) and a speaker calling playing cards (cards/,
# 1 to 3.5 s), each with transcripts; read where installed, never copied.
SPHINX = Path("/usr/share/pocketsphinx/test/data")
RATE = 16000
PAUSE_SECONDS = (0.5, 0.7, 0.6, 0.45)  # between turns, in turn
# In a call, every third change of speaker starts this long before the other stops speaking.
CROSSTALK_SECONDS = 0.8


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
# The two pocketsphinx-testdata speakers taking turns, the card caller's turns short.
AUSTEN = "librivox/sense_and_sensibility_01_austen_64kb-"
SPHINX_TWO = [("SS", AUSTEN + "0870.wav"), ("cards", "cards/005.wav"),
              ("SS", AUSTEN + "0880.wav"), ("cards", "cards/002.wav"),
              ("SS", AUSTEN + "0890.wav"), ("cards", "cards/003.wav")]


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


def build_call(turns: list[tuple[int, Path]], out: Path) -> list[Turn]:
    """Write a two-party call as 16 kHz stereo FLAC at `out`, each turn (channel, utterance) on
    its channel and the other channel silent, turns apart by `PAUSE_SECONDS` between their
    speech, but every third change of speaker `CROSSTALK_SECONDS` into the speech before it
    (both talk at once); return the reference turns, speakers `S1` (channel 0) and `S2`."""
    placed: list[tuple[int, int, np.ndarray]] = []  # (channel, first sample, samples)
    reference: list[Turn] = []
    ends, spoken_to, changes = [0, 0], 0.0, 0
    for i, (channel, path) in enumerate(turns):
        samples = decode_audio(str(path), sampling_rate=RATE)
        first, last = _spoken(samples)
        gap = PAUSE_SECONDS[i % len(PAUSE_SECONDS)]
        if i and channel != turns[i - 1][0]:
            changes += 1
            gap = -CROSSTALK_SECONDS if changes % 3 == 0 else gap
        at = max(int((spoken_to + gap - first) * RATE), ends[channel], 0) if i else 0
        placed.append((channel, at, samples))
        ends[channel] = at + samples.size
        reference.append(Turn(f"S{channel + 1}", round(float(at / RATE + first), 3),
                              round(float(at / RATE + last), 3)))
        spoken_to = max(spoken_to, at / RATE + last)
    pcm = np.zeros((2, max(ends)), np.float32)
    for channel, at, samples in placed:
        pcm[channel, at:at + samples.size] = samples
    _write_flac(pcm, out)
    return sorted(reference, key=lambda t: t.start)


def build_back_to_back(turns: list[tuple[int, Path]], out: Path) -> list[Turn]:
    """Write a call as 16 kHz stereo FLAC at `out` with no pause anywhere: each turn (channel,
    utterance) only its speech (`_spoken`), starting where the turn before ends, the first at
    the file's start and the last ending it; return the reference turns (`S1` channel 0)."""
    pieces: list[tuple[int, int, np.ndarray]] = []
    reference: list[Turn] = []
    at = 0
    for channel, path in turns:
        samples = decode_audio(str(path), sampling_rate=RATE)
        first, last = _spoken(samples)
        said = samples[int(first * RATE):int(last * RATE)]
        pieces.append((channel, at, said))
        reference.append(Turn(f"S{channel + 1}", round(at / RATE, 3),
                              round((at + said.size) / RATE, 3)))
        at += said.size
    pcm = np.zeros((2, at), np.float32)
    for channel, begin, said in pieces:
        pcm[channel, begin:begin + said.size] = said
    _write_flac(pcm, out)
    return reference


def _spoken(samples: np.ndarray) -> tuple[float, float]:
    """Seconds from the start to the first and the last sample louder than -40 dBFS."""
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return (loud[0] / RATE, (loud[-1] + 1) / RATE) if loud.size else (0.0, 0.0)


def _write_flac(samples: np.ndarray, path: Path) -> None:
    """Mono `samples`, or stereo as two rows, as 16-bit FLAC."""
    layout = "stereo" if samples.ndim == 2 else "mono"
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=RATE, layout=layout)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout=layout)
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def in_data(turns: list[tuple[str, str]], folder: Path = DATA) -> list[tuple[str, Path]]:
    return [(speaker, folder / name) for speaker, name in turns]


def labels_per_turn(transcript: dict, turns: list[Turn]) -> list[set[str]]:
    """The speaker labels of the words said within each reference turn (a JSON transcript
    with word timings)."""
    found: list[set[str]] = [set() for _ in turns]
    for segment in transcript["segments"]:
        for word in segment["words"]:
            middle = (word["start"] + word["end"]) / 2
            for i, turn in enumerate(turns):
                if turn.start - 0.3 <= middle <= turn.end + 0.3:
                    found[i].add(word["speaker"])
    return found


def assert_turns_labelled(transcript: dict, turns: list[Turn]) -> None:
    """Each turn's words under one label, the same for a speaker who comes back, a different
    one for each speaker."""
    per_turn = labels_per_turn(transcript, turns)
    assert all(len(labels) == 1 for labels in per_turn), per_turn
    label_of: dict[str, str] = {}
    for turn, labels in zip(turns, per_turn, strict=True):
        assert label_of.setdefault(turn.speaker, next(iter(labels))) in labels, per_turn
    assert len(set(label_of.values())) == len(label_of), per_turn
