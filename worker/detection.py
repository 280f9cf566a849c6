"""Which language is spoken: Whisper's own language detection, made sturdier.

faster-whisper detects once, on the first 30 s of the recording, among all 99 languages, so a
short or quiet opening decides a whole recording wrongly (issue 11: a 4 s Spanish clip came back
as Hindi at 0.22). Here detection hears only speech (VAD regions, not the silence around them),
keeps listening over further 30-second stretches of speech while it is unsure, averaging what
it heard, and can be told the few languages a recording may be in (`ko,en`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.schemas import LanguageProbability

# Whisper hears 30 s at a time.
CHUNK_SAMPLES = 30 * 16000
# Stretches of speech heard while the likeliest language stays below THRESHOLD
# (faster-whisper's `language_detection_segments` / `language_detection_threshold`).
MAX_CHUNKS = 4
THRESHOLD = 0.5
# A last stretch shorter than this adds too little to be worth an encoder pass.
MIN_CHUNK_SAMPLES = 16000
# Alternatives reported with a job.
ALTERNATIVES = 5


@dataclass(frozen=True)
class Detection:
    """Languages, likeliest first, with probabilities (among the candidates where given)."""

    ranked: list[LanguageProbability]

    @property
    def language(self) -> str:
        return self.ranked[0].language

    @property
    def probability(self) -> float:
        return self.ranked[0].probability

    def alternatives(self) -> list[LanguageProbability]:
        return self.ranked[:ALTERNATIVES]


def detect(model: object, speech: np.ndarray, candidates: list[str]) -> Detection:
    """The language of float32 `speech`, heard 30 s at a time until sure (at most
    MAX_CHUNKS), chosen among `candidates` (any language when empty)."""
    totals: dict[str, float] = {}
    heard = 0
    for start in range(0, max(speech.size, 1), CHUNK_SAMPLES):
        chunk = speech[start:start + CHUNK_SAMPLES]
        if heard and chunk.size < MIN_CHUNK_SAMPLES:
            break
        for language, probability in _probabilities(model, chunk):
            totals[language] = totals.get(language, 0.0) + probability
        heard += 1
        detection = ranked(totals, candidates)
        if detection.probability > THRESHOLD or heard == MAX_CHUNKS:
            break
    return detection


def ranked(totals: dict[str, float], candidates: list[str]) -> Detection:
    """`totals` (summed probabilities) as a distribution over `candidates`, best first."""
    if candidates:
        totals = {code: totals.get(code, 0.0) for code in candidates}
    whole = sum(totals.values()) or 1.0
    order = sorted(totals.items(), key=lambda item: -item[1])
    return Detection([LanguageProbability(language=code, probability=round(total / whole, 4))
                      for code, total in order])


def _probabilities(model: object, chunk: np.ndarray) -> list[tuple[str, float]]:
    """Whisper's probability of every language for up to 30 s of audio."""
    _, _, probabilities = model.detect_language(audio=chunk)  # type: ignore[attr-defined]
    return probabilities
