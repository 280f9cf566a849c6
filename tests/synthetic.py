"""Recordings made for the tests: espeak-ng speech in two languages, silence, noise, tones.

espeak-ng (Debian's `espeak-ng`, GPL-3.0; its output is free of any licence claim) speaks the
scripts below; every file is made at set-up, so nothing synthetic is committed."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
from faster_whisper import decode_audio
from scipy.signal import butter, lfilter
from support import debian_tool, write_audio

RATE = 16000
# (espeak-ng voice, Whisper language code, script): one sentence each, read in order.
ENGLISH_GERMAN = [
    ("en", "en", "The weather was cold this morning, so we stayed inside and read our books."),
    ("de", "de", "Am Nachmittag sind wir in die Stadt gefahren und haben frisches Brot gekauft."),
]
KOREAN_ENGLISH = [
    ("ko", "ko", "오늘 아침에 친구와 함께 공원에서 산책을 했습니다."),
    ("en", "en", "After lunch we went to the library to study for the exam."),
]
# espeak-ng as packaged reads Mandarin hanzi as tone digits; its Cantonese voice speaks them,
# and the base model asked for Chinese writes what it hears in Chinese characters.
CHINESE = [("yue", "zh", "你好 多谢你。")]
PAUSE_SECONDS = 1.0


def speech(voice: str, text: str, folder: Path) -> np.ndarray:
    """int16 16 kHz samples of espeak-ng reading `text` with `voice`."""
    espeak = debian_tool("espeak-ng")
    wav = folder / f"{voice}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"
    subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(wav), text], check=True,
                   capture_output=True, timeout=60)
    return (decode_audio(str(wav), sampling_rate=RATE) * 32767).astype(np.int16)


def spoken(script: list[tuple[str, str, str]], path: Path) -> Path:
    """`script` read sentence after sentence, a pause before, between and after them."""
    pause = np.zeros(int(PAUSE_SECONDS * RATE), np.int16)
    parts = [pause]
    for voice, _, text in script:
        parts += [speech(voice, text, path.parent), pause]
    return write_audio(path, np.concatenate(parts))


def noise(path: Path, seconds: float, level: float = 0.02, seed: int = 11) -> Path:
    """White noise at `level` of full scale."""
    samples = np.random.default_rng(seed).normal(0, level, int(seconds * RATE))
    return write_audio(path, (np.clip(samples, -1, 1) * 32767).astype(np.int16))


def tones(path: Path, seconds: float) -> Path:
    """A steady 440 Hz tone with a 660 Hz one over it every other second: music-like."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 660 * t) * (t % 2 < 1)
    return write_audio(path, (wave * 32767).astype(np.int16))


def melody(seconds: float, seed: int = 7) -> np.ndarray:
    """int16 samples of a piano-like tune: plucked notes of the C major scale, four a second,
    over a chord each second (YAMNet hears it as music, keyboard, piano)."""
    rng = np.random.default_rng(seed)
    note_t = np.arange(RATE // 4) / RATE
    scale = [261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 493.88, 523.25]
    out = np.zeros(int(seconds * RATE))
    for k in range(out.size // note_t.size):
        pitch = scale[rng.integers(len(scale))]
        note = sum(np.sin(2 * np.pi * pitch * h * note_t) / h ** 1.5 for h in range(1, 8))
        out[k * note_t.size:(k + 1) * note_t.size] += note * np.exp(-note_t * 6)
    chord_t = np.arange(RATE) / RATE
    for k in range(out.size // RATE):
        root = [130.81, 110.0, 87.31, 98.0][k % 4]
        chord = sum(np.sin(2 * np.pi * root * r * chord_t) for r in (1, 1.25, 1.5))
        out[k * RATE:(k + 1) * RATE] += 0.5 * chord * np.exp(-chord_t * 2)
    return (0.3 * out / np.abs(out).max() * 32767).astype(np.int16)


def applause(seconds: float, hands: int = 150, seed: int = 1) -> np.ndarray:
    """int16 samples of an audience clapping: `hands` pairs of hands, each clapping every 0.2 to
    0.33 s (jittered) with its own loudness and colour (a band an octave and a third wide from
    400 to 1200 Hz up); a clap is a noise burst with an exponential decay of 3 to 8 ms.

    YAMNet's 8-bit export hears this as Applause over its span only near full scale and with
    a few hundred claps a second: sparser, brighter or reverberant clapping it hears as
    typing, coins or percussion, and a real audience that also cheers as Cheering."""
    rng = np.random.default_rng(seed)
    size, burst = int(seconds * RATE), int(0.04 * RATE)
    out = np.zeros(size + burst)
    for _ in range(hands):
        low = rng.uniform(400, 1200)
        b, a = butter(2, [low / (RATE / 2), low * 2.5 / (RATE / 2)], "band")
        period, gain = rng.uniform(0.2, 0.33), rng.uniform(0.3, 1.0)
        claps = np.zeros(out.size)
        at = rng.uniform(0, period)
        while at < seconds:
            decay = np.exp(-np.arange(burst) / (rng.uniform(0.003, 0.008) * RATE))
            start = int(at * RATE)
            claps[start:start + burst] += rng.standard_normal(burst) * decay
            at += period * rng.uniform(0.9, 1.1)
        out += lfilter(b, a, claps) * gain
    out = out[:size]
    return (0.9 * out / np.abs(out).max() * 32767).astype(np.int16)
