"""The sound classifier (issue 25) with the real YAMNet export and the real base model: speech,
then music, then an audience, tagged in order and in place; music alone decodes to no words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import DATA, write_audio
from synthetic import RATE, melody

from shared.config import Settings
from shared.schemas import JobOptions, Sound, Transcript
from worker import sounds
from worker.audio import pcm_blocks
from worker.model import get_model
from worker.transcriber import transcribe

JFK_SECONDS, MUSIC_SECONDS = 11.0, 8.0


def samples(path: Path) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(path, 3600)))


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    """JFK's 11 s, 8 s of a tune, then an enthusiastic audience (tests/data/applause.flac)
    twice: 26.4 s."""
    audience = samples(DATA / "applause.flac")
    return np.concatenate([samples(DATA / "jfk.flac"), melody(MUSIC_SECONDS), audience, audience])


@pytest.fixture(scope="module")
def transcript(mix: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Transcript:
    path = write_audio(tmp_path_factory.mktemp("sounds") / "mix.flac", mix)
    settings = Settings()
    options = JobOptions(sounds=True, vad_filter=False, language="en")
    return transcribe(get_model(settings), path, options, settings, lambda _: None)


def test_every_class_the_labels_name_is_one_the_model_has() -> None:
    names = set(sounds.class_names())
    assert len(names) == 521
    assert {c for classes in sounds.SOUND_CLASSES.values() for c in classes} <= names


def test_speech_then_music_then_the_audience_in_place(transcript: Transcript) -> None:
    assert "ask not what your country can do for you" in transcript.text
    assert all(s.end <= JFK_SECONDS + 0.5 for s in transcript.segments), transcript.segments
    heard = transcript.sounds or []
    assert [s.label for s in heard] == ["music", "cheering"], heard
    music, audience = heard
    assert JFK_SECONDS - 0.5 <= music.start <= JFK_SECONDS + 1.0, music
    assert JFK_SECONDS + MUSIC_SECONDS - 1.0 <= music.end <= JFK_SECONDS + MUSIC_SECONDS + 1.0
    assert music.confidence >= 0.7
    assert audience.start >= music.end
    assert audience.end <= transcript.duration


def test_music_alone_gives_no_words_with_vad_off(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "tune.flac", melody(60.0))
    settings = Settings()
    options = JobOptions(sounds=True, vad_filter=False)
    found = transcribe(get_model(settings), path, options, settings, lambda _: None)
    assert found.segments == []
    assert found.text == ""
    assert [(s.label, s.start) for s in found.sounds or []] == [("music", 0.0)]
    assert (found.sounds or [])[0].end >= 59.0


def test_stretches_sure_to_be_music_are_no_longer_speech(mix: np.ndarray) -> None:
    scores = sounds.classify(mix)
    everything = [(0, mix.size)]
    kept = sounds.without_music(everything, scores)
    music = (int(JFK_SECONDS * RATE), int((JFK_SECONDS + MUSIC_SECONDS) * RATE))
    inside = sum(max(0, min(b, music[1]) - max(a, music[0])) for a, b in kept)
    assert inside < 1.5 * RATE, "most of the tune is taken out of the speech"
    assert kept[0][0] == 0, "the speech stays"
    assert kept[0][1] >= JFK_SECONDS * RATE, "the speech stays"


def test_patches_are_merged_into_sounds_across_short_gaps() -> None:
    labels = [("music", 0.9), None, None, ("music", 0.7), None, None, None, ("laughter", 0.3)]
    assert sounds.merge(labels, 10.0, 20.0) == [
        Sound(start=10.0, end=12.16, label="music", confidence=0.8),
        Sound(start=13.6, end=14.08, label="laughter", confidence=0.3),
    ]
    assert sounds.patch_labels(np.zeros((2, 521), np.float32)) == [None, None]


def test_a_sound_cut_by_a_window_end_is_one_sound() -> None:
    parts = [Sound(start=30.0, end=40.0, label="music", confidence=0.9),
             Sound(start=5.0, end=29.8, label="music", confidence=0.6)]
    assert sounds.joined(parts) == [Sound(start=5.0, end=40.0, label="music", confidence=0.686)]
