"""Sounds in a live session (issue 25, a `start` message's `sounds: true`): the session's audio
classified as it arrives (`worker/sounds.py`), each sound sent once it has ended.

Patches are classified as soon as their 0.96 s are in, every 0.48 s as in a job, so the labels
and their merging are a job's own. A sound is settled once a patch of another label follows it,
or more than `GAP_PATCHES` patches without one; until then it may still grow. At the session's
end the last part of the audio is classified (padded with silence, as a job's last patch is)
and every sound still open is settled.
"""

from __future__ import annotations

import numpy as np

from shared.schemas import Sound
from worker.audio import SAMPLE_RATE
from worker.sounds import GAP_PATCHES, HOP, PATCH, PATCH_HOP, WINDOW, classify, merge, patch_labels

# Samples a patch covers, and between two patches' starts.
PATCH_SAMPLES = (PATCH - 1) * HOP + WINDOW
STEP_SAMPLES = PATCH_HOP * HOP


class LiveSounds:
    """One session's classifier: samples in, settled sounds out."""

    def __init__(self) -> None:
        self.pending = np.zeros(0, np.int16)  # from the next patch's start on
        self.labels: list[tuple[str, float] | None] = []  # one per patch classified
        self.received = 0  # samples
        self.sent = 0  # sounds settled and handed out

    def append(self, samples: np.ndarray) -> None:
        """Add 16 kHz int16 samples that just arrived."""
        self.received += samples.size
        self.pending = np.concatenate([self.pending, samples])

    def step(self) -> list[Sound]:
        """Classify the patches whose audio is in; the sounds that have just been settled."""
        if not self._whole_patches():
            return []  # a sound settles only on a new patch
        sounds = self.heard()
        last = max((k for k, found in enumerate(self.labels) if found), default=-1)
        open_run = len(self.labels) - 1 - last <= GAP_PATCHES  # the last sound may still grow
        return self._hand_out(sounds[:-1] if sounds and open_run else sounds)

    def finish(self) -> list[Sound]:
        """The stream has ended: classify what is left; every sound not yet handed out."""
        self._whole_patches()
        # The last whole patch covers its audio up to here; the rest gets one padded patch.
        covered = PATCH_SAMPLES - STEP_SAMPLES if self.labels else 0
        if self.pending.size > covered:
            self._classify(self.pending.size, 1)
        return self._hand_out(self.heard())

    def heard(self) -> list[Sound]:
        """Every sound heard so far, on the session's clock."""
        return merge(self.labels, 0.0, self.received / SAMPLE_RATE)

    def _whole_patches(self) -> bool:
        """Classify every patch whose audio is all in; whether there was one."""
        if self.pending.size < PATCH_SAMPLES:
            return False
        count = (self.pending.size - PATCH_SAMPLES) // STEP_SAMPLES + 1
        self._classify((count - 1) * STEP_SAMPLES + PATCH_SAMPLES, count)
        return True

    def _classify(self, samples: int, count: int) -> None:
        scores = classify(self.pending[:samples])[:count]
        self.labels += patch_labels(scores)
        self.pending = self.pending[count * STEP_SAMPLES:]

    def _hand_out(self, sounds: list[Sound]) -> list[Sound]:
        new = sounds[self.sent:]
        self.sent += len(new)
        return new
