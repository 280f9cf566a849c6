"""The sound classifier: what is heard besides speech, about once a second (issue 25).

Google's YAMNet (AudioSet's 521 classes) scores each 0.96 s patch of log-mel spectrogram. The
file run, `data/yamnet.onnx`, is Google's own 8-bit YAMNet (TF Hub's `yamnet/classification`,
as tensorflow/tflite-support keeps it for its tests, Apache-2.0), its MobileNet tower converted
to ONNX with the same int8 weights, scales and zero points by `bench/yamnet_onnx.py`; it runs
on onnxruntime alone, and the front end it leaves out is `patches` below.
`yamnet_class_map.csv` is YAMNet's own (Apache-2.0), its names AudioSet's ontology (CC BY-SA
4.0). worker/data/README.md has the provenance, docs/guides/sounds.md the rest.

Each patch's scores become at most one label from `SOUND_CLASSES` (the AudioSet classes each
SDH label stands for), and runs of one label become sounds. Where the model is sure of music and
hears no speech, a segment needs more than elsewhere to be kept (`over_music`, used by the
transcriber with `worker/speech.py`'s `doubtful`): Whisper sings along and makes lyrics up, and
voice-activity detection can take singing for speech. Not more than that: under music as loud
as the voice this model hears next to no speech (its speech score stays at or below 0.08 where
the base model still decodes the words), so a stretch it calls music alone is not taken from the
speech.
"""

from __future__ import annotations

import csv
import hashlib
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from shared.errors import ModelUnavailable
from shared.schemas import ClassLabel, ClipLabels, Sound
from worker.audio import SAMPLE_RATE, to_float

DATA = resources.files("worker") / "data"
MODEL = "yamnet.onnx"
MODEL_SHA256 = "1bdc1d7d91d7af335650e95318dd042d51f59c887692d25cd749becfe608399f"
CLASS_MAP = "yamnet_class_map.csv"

# YAMNet's front end (its params.py): 25 ms Hann windows every 10 ms, a 512-point FFT, 64 mel
# bands from 125 to 7500 Hz, log(mel + 0.001), patches of 96 frames.
WINDOW, HOP, FFT, BANDS, PATCH = 400, 160, 512, 64, 96
LOG_OFFSET = 0.001
# A patch every 0.48 s (YAMNet's own hop): labels about twice a second, merged into sounds.
PATCH_HOP = 48
HOP_SECONDS = PATCH_HOP * HOP / SAMPLE_RATE
PATCH_SECONDS = PATCH * HOP / SAMPLE_RATE
# Patches scored per run of the model: a window's worth at most, so memory stays small.
BATCH = 64

# The SDH label each AudioSet class (YAMNet's display name) is heard as. The words shown in
# subtitles are `shared/output/sdh.py`'s, one table per language.
SOUND_CLASSES: dict[str, tuple[str, ...]] = {
    "music": ("Music", "Musical instrument", "Singing", "Choir", "Child singing",
              "Synthetic singing", "Background music", "Theme music", "Jingle (music)",
              "Soundtrack music", "Pop music", "Rock music", "Classical music",
              "Electronic music", "Video game music", "Dance music"),
    "applause": ("Applause", "Clapping"),
    "cheering": ("Cheering", "Crowd", "Whoop"),
    "laughter": ("Laughter", "Baby laughter", "Giggle", "Belly laugh", "Chuckle, chortle",
                 "Snicker"),
    "crying": ("Crying, sobbing", "Baby cry, infant cry", "Whimper", "Wail, moan"),
    "screaming": ("Screaming",),
    "coughing": ("Cough",),
    "dog barking": ("Bark", "Yip", "Bow-wow"),
    "phone ringing": ("Telephone bell ringing", "Ringtone"),
    "doorbell": ("Doorbell", "Ding-dong"),
    "knocking": ("Knock",),
    "siren": ("Siren", "Civil defense siren", "Police car (siren)", "Ambulance (siren)",
              "Fire engine, fire truck (siren)"),
    "alarm": ("Alarm", "Alarm clock", "Smoke detector, smoke alarm", "Fire alarm"),
    "thunder": ("Thunder", "Thunderstorm"),
    "gunshot": ("Gunshot, gunfire", "Machine gun", "Cap gun"),
    "explosion": ("Explosion", "Boom"),
}
# How sure a patch must be of a label: music scores high where it plays; crowd sounds and
# laughter rarely pass 0.3 even where they fill the patch.
THRESHOLDS = {"music": 0.5}
DEFAULT_THRESHOLD = 0.15
SPEECH_CLASSES = ("Speech", "Child speech, kid speaking", "Conversation",
                  "Narration, monologue")
# Music and not speech (`without_music`): music at least this sure, speech at most this.
SURE_MUSIC, NO_SPEECH = 0.6, 0.2
# The classes a clip's labels name (`clip_labels`), best first.
TOP_LABELS = 5
# Up to this many patches without a label inside a run of one label still make one sound.
GAP_PATCHES = 2

Regions = list[tuple[int, int]]


@cache
def _model() -> ort.InferenceSession:
    """The session, loaded once per process."""
    path = Path(str(DATA / MODEL))
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
        raise ModelUnavailable(f"The sound model {path} is missing or damaged; reinstall.")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@cache
def class_names() -> tuple[str, ...]:
    with (DATA / CLASS_MAP).open(encoding="utf-8") as f:
        return tuple(row["display_name"] for row in csv.DictReader(f))


@cache
def _mel_matrix() -> np.ndarray:
    """Triangular HTK mel filters over the FFT bins (TensorFlow's linear_to_mel_weight_matrix,
    as YAMNet computes it: the DC bin gets no weight)."""
    def mel(hz: np.ndarray) -> np.ndarray:
        return 1127.0 * np.log1p(hz / 700.0)

    bins = mel(np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1))[:, None]
    edges = mel(np.linspace(125.0, 7500.0, 2))
    edges = np.linspace(edges[0], edges[1], BANDS + 2)
    lower = (bins - edges[:-2]) / (edges[1:-1] - edges[:-2])
    upper = (edges[2:] - bins) / (edges[2:] - edges[1:-1])
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights[0] = 0.0
    return weights.astype(np.float32)


def patches(samples: np.ndarray) -> np.ndarray:
    """int16 16 kHz samples as YAMNet's log-mel patches, [n, 1, 96, 64], one every 0.48 s;
    the end is padded with silence to fill the last patch."""
    audio = to_float(samples)
    needed = (PATCH - 1) * HOP + WINDOW
    count = max(1, -(-(audio.size - needed) // (PATCH_HOP * HOP)) + 1)
    audio = np.pad(audio, (0, max(0, (count - 1) * PATCH_HOP * HOP + needed - audio.size)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, WINDOW)[::HOP]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic
    spectrum = np.abs(np.fft.rfft(frames * hann, FFT)).astype(np.float32)
    log_mel = np.log(spectrum @ _mel_matrix() + LOG_OFFSET)
    index = np.arange(PATCH)[None, :] + PATCH_HOP * np.arange(count)[:, None]
    return log_mel[index][:, None]


def classify(samples: np.ndarray) -> np.ndarray:
    """AudioSet scores (0 to 1) of each 0.48 s step of int16 `samples`, [n, 521]; step k
    covers the 0.96 s from k * 0.48 s."""
    if not samples.size:
        return np.zeros((0, len(class_names())), np.float32)
    found = patches(samples)
    session = _model()
    return np.concatenate([session.run(None, {"patches": found[k:k + BATCH]})[0]
                           for k in range(0, len(found), BATCH)])


@cache
def _columns() -> tuple[list[str], np.ndarray, np.ndarray]:
    """The labels, each one's AudioSet columns as a mask [labels, 521], and the speech mask."""
    names = class_names()
    labels = list(SOUND_CLASSES)
    masks = np.array([[name in SOUND_CLASSES[label] for name in names] for label in labels])
    return labels, masks, np.array([name in SPEECH_CLASSES for name in names])


def _group_max(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, scores, 0.0).max(axis=1)  # type: ignore[no-any-return]


def _group_sum(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.minimum(1.0, np.where(mask, scores, 0.0).sum(axis=1))


def _group_any(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return 1.0 - np.prod(np.where(mask, 1.0 - scores, 1.0), axis=1)  # type: ignore[no-any-return]


# How a label's score is made from its classes' (`patch_labels`): the best one's (max), their
# sum, or the chance that any is heard (noisy-or). Max is used: on the labelled set of
# bench/sounds_bench.py the three choose the same labels, and the other two add up the many
# weak scores of a large group (music has 16 classes, laughter 6) into false sounds.
GROUPINGS = {"max": _group_max, "sum": _group_sum, "noisy-or": _group_any}


def patch_labels(scores: np.ndarray, grouping: str = "max") -> list[tuple[str, float] | None]:
    """Each patch's label and its score: the best-scoring label that passes its threshold,
    a label scoring its classes as `grouping` says."""
    labels, masks, _ = _columns()
    by_label = np.stack([GROUPINGS[grouping](scores, mask) for mask in masks], axis=1)
    found: list[tuple[str, float] | None] = []
    for row in by_label:
        best = int(row.argmax())
        sure = row[best] >= THRESHOLDS.get(labels[best], DEFAULT_THRESHOLD)
        found.append((labels[best], float(row[best])) if sure else None)
    return found


def merge(labels: list[tuple[str, float] | None], offset: float, end: float) -> list[Sound]:
    """Runs of one label (gaps of up to `GAP_PATCHES` patches bridged) as sounds, on the
    recording's clock from `offset` and never past `end`; confidence is the run's mean."""
    sounds: list[Sound] = []
    label, run = "", list[tuple[int, float]]()
    for k, found in enumerate(labels):
        if run and (k - run[-1][0] > GAP_PATCHES + 1 or (found and found[0] != label)):
            sounds.append(_sound(label, run, offset, end))
            run = []
        if found is not None:
            label = found[0]
            run.append((k, found[1]))
    if run:
        sounds.append(_sound(label, run, offset, end))
    return sounds


def _sound(label: str, run: list[tuple[int, float]], offset: float, end: float) -> Sound:
    """The run's sound, from its first patch's middle step to its last's (patches overlap by
    half): the first patch of a window starts it, the last patch's end ends it."""
    first, last = run[0][0], run[-1][0]
    start = offset + (first * HOP_SECONDS + HOP_SECONDS / 2 if first else 0.0)
    stop = min(offset + (last + 1) * HOP_SECONDS + HOP_SECONDS / 2, end)
    return Sound(start=round(start, 3), end=round(stop, 3), label=label,
                 confidence=round(float(np.mean([score for _, score in run])), 3))


def joined(sounds: list[Sound]) -> list[Sound]:
    """Sounds in order with those of one label that meet (across two windows) made one."""
    out: list[Sound] = []
    for sound in sorted(sounds, key=lambda s: s.start):
        last = out[-1] if out else None
        if last is not None and last.label == sound.label and sound.start - last.end < 0.5:
            span = (last.end - last.start) + (sound.end - sound.start) or 1.0
            confidence = (last.confidence * (last.end - last.start)
                          + sound.confidence * (sound.end - sound.start)) / span
            out[-1] = last.model_copy(update={"end": max(last.end, sound.end),
                                              "confidence": round(confidence, 3)})
        else:
            out.append(sound)
    return out


def clip_labels(samples: np.ndarray, top: int = TOP_LABELS) -> ClipLabels:
    """A short clip's `top` AudioSet classes by their mean score over it, and its sounds."""
    scores, seconds = classify(samples), samples.size / SAMPLE_RATE
    mean = scores.mean(axis=0) if len(scores) else np.zeros(len(class_names()))
    best = np.argsort(-mean, kind="stable")[:top]
    return ClipLabels(
        duration=round(seconds, 3),
        labels=[ClassLabel(label=class_names()[k], score=round(float(mean[k]), 3))
                for k in best if mean[k] > 0],
        sounds=joined(merge(patch_labels(scores), 0.0, seconds)))


def music_only(scores: np.ndarray) -> Regions:
    """(start, end) sample offsets of the stretches sure to be music and not speech."""
    labels, masks, speech = _columns()
    music = np.where(masks[labels.index("music")], scores, 0.0).max(axis=1)
    talk = np.where(speech, scores, 0.0).max(axis=1)
    # Each patch's middle step: patches overlap by half, so a run of them covers its span,
    # and a music patch next to speech does not cut into it.
    step = PATCH_HOP * HOP
    sure = np.flatnonzero((music >= SURE_MUSIC) & (talk <= NO_SPEECH)).tolist()
    return [(k * step + step // 2, (k + 1) * step + step // 2) for k in sure]


def over_music(start: float, end: float, music: Regions) -> bool:
    """Whether at least half of [start, end] (seconds) lies in `music` (sample offsets)."""
    low, high = start * SAMPLE_RATE, end * SAMPLE_RATE
    inside = sum(max(0.0, min(high, b) - max(low, a)) for a, b in music)
    return high > low and inside >= (high - low) / 2
