"""The sound classifier (issue 25) with the real YAMNet export and the real base model: speech,
then music, then clapping, then an audience, tagged in order and in place; music alone
decodes to no words; speech under loud music keeps its words; over music one sign of a failed
decoding drops a segment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faster_whisper.transcribe import Segment as FWSegment
from support import DATA, write_audio
from synthetic import RATE, applause, melody

from shared.config import Settings
from shared.schemas import JobOptions, Sound, Transcript
from worker import sounds
from worker.audio import pcm_blocks
from worker.live_sounds import LiveSounds
from worker.model import get_model
from worker.speech import doubtful, is_speech
from worker.transcriber import transcribe

JFK_SECONDS, MUSIC_SECONDS, CLAPPING_SECONDS = 11.0, 8.0, 6.0
CLAPPING_END = JFK_SECONDS + MUSIC_SECONDS + CLAPPING_SECONDS


def samples(path: Path) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(path, 3600)))


@pytest.fixture(scope="module")
def mix() -> np.ndarray:
    """JFK's 11 s, 8 s of a tune, 6 s of clapping, then an enthusiastic audience
    (tests/data/applause.flac) twice: 32.4 s."""
    audience = samples(DATA / "applause.flac")
    return np.concatenate([samples(DATA / "jfk.flac"), melody(MUSIC_SECONDS),
                           applause(CLAPPING_SECONDS), audience, audience])


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


def test_a_recording_scores_the_same_in_batches_as_patch_by_patch(mix: np.ndarray) -> None:
    scores = sounds.classify(mix)
    patches = sounds.patches(mix)
    assert len(scores) == len(patches) > sounds.BATCH
    one_by_one = [sounds._model().run(None, {"patches": patch[None]})[0][0] for patch in patches]
    np.testing.assert_array_equal(scores, np.array(one_by_one))


def test_generated_clapping_is_heard_as_applause_over_its_span() -> None:
    clip = sounds.clip_labels(applause(CLAPPING_SECONDS))
    assert clip.labels[0].label == "Applause", clip.labels
    assert [s.label for s in clip.sounds] == ["applause"], clip.sounds
    assert clip.sounds[0].start <= 0.5
    assert clip.sounds[0].end >= CLAPPING_SECONDS - 0.5


def test_speech_then_music_then_applause_then_the_audience_in_place(
    transcript: Transcript,
) -> None:
    assert "ask not what your country can do for you" in transcript.text
    assert all(s.end <= JFK_SECONDS + 0.5 for s in transcript.segments), transcript.segments
    heard = transcript.sounds or []
    # The real audience claps and cheers: the model hears it cheer, then clap in its last second
    # or so, where the cheering has died down; the audience comes twice.
    assert [s.label for s in heard] == ["music", "applause", *["cheering", "applause"] * 2], heard
    music, clapping, audience = heard[0], heard[1], heard[2:]
    assert JFK_SECONDS - 0.5 <= music.start <= JFK_SECONDS + 1.0, music
    assert JFK_SECONDS + MUSIC_SECONDS - 1.0 <= music.end <= JFK_SECONDS + MUSIC_SECONDS + 1.0
    assert music.confidence >= 0.7
    assert music.end <= clapping.start <= JFK_SECONDS + MUSIC_SECONDS + 1.5, clapping
    assert CLAPPING_END - 1.0 <= clapping.end <= CLAPPING_END + 0.5, clapping
    assert audience[0].start >= clapping.end
    assert audience[-1].end <= transcript.duration


def test_music_alone_gives_no_words_with_vad_off(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "tune.flac", melody(60.0))
    settings = Settings()
    options = JobOptions(sounds=True, vad_filter=False)
    found = transcribe(get_model(settings), path, options, settings, lambda _: None)
    assert found.segments == []
    assert found.text == ""
    assert [(s.label, s.start) for s in found.sounds or []] == [("music", 0.0)]
    assert (found.sounds or [])[0].end >= 59.0


def test_music_alone_is_told_from_speech(mix: np.ndarray) -> None:
    music = sounds.music_only(sounds.classify(mix))
    tune = (JFK_SECONDS * RATE, (JFK_SECONDS + MUSIC_SECONDS) * RATE)
    inside = sum(max(0, min(b, tune[1]) - max(a, tune[0])) for a, b in music)
    assert inside >= 0.8 * MUSIC_SECONDS * RATE, "most of the tune is sure music"
    assert music[0][0] >= 10.5 * RATE, "none of the speech is"
    assert sounds.over_music(12.0, 18.0, music)
    assert not sounds.over_music(2.0, 10.0, music)


def test_speech_under_loud_music_keeps_its_words(tmp_path: Path) -> None:
    """The classifier hears no speech under music as loud as the voice; the words stay."""
    voice = samples(DATA / "jfk.flac").astype(np.float32)
    tune = melody(JFK_SECONDS).astype(np.float32)[:voice.size]
    tune *= np.sqrt(np.mean(voice ** 2) / np.mean(tune ** 2))
    path = write_audio(tmp_path / "under.flac", np.clip(voice + tune, -32767, 32767)
                       .astype(np.int16))
    settings = Settings()
    texts = [transcribe(get_model(settings), path, JobOptions(sounds=on, vad_filter=False),
                        settings, lambda _: None).text for on in (False, True)]
    assert "what your country can do for you" in texts[0]
    assert texts[1] == texts[0]


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


def decoded(text: str, logprob: float, no_speech: float, ratio: float) -> FWSegment:
    return FWSegment(id=0, seek=0, start=1.0, end=4.0, text=text, tokens=[],
                     avg_logprob=logprob, compression_ratio=ratio, no_speech_prob=no_speech,
                     words=None, temperature=0.0)


@pytest.mark.parametrize(("segment", "over_music_too"), [
    (decoded(" La la la la la la la la la la.", -0.4, 0.1, 2.2), True),  # a chorus made up
    (decoded(" Baby, baby, oh.", -1.2, 0.3, 1.3), True),  # a weak decoding
    (decoded(" Ask not what your country can do.", -0.4, 0.06, 1.2), False),  # speech
    (decoded(" He hoped there would be stew.", -0.86, 0.26, 1.1), False),  # speech under music
])
def test_over_music_one_sign_of_a_failed_decoding_drops_a_segment(
    segment: FWSegment, over_music_too: bool
) -> None:
    speech = [(0, 5 * RATE)]
    assert is_speech(segment, speech), "each passes the checks that apply everywhere"
    assert doubtful(segment) is over_music_too


def test_a_live_stream_hears_what_a_job_hears_and_settles_each_sound_once_over(
    mix: np.ndarray,
) -> None:
    """Fed 0.1 s at a time, as a live session's frames arrive: the tune is handed out while
    the clapping still plays, the audience at the end, and together they are the job's."""
    live = LiveSounds()
    settled: list[tuple[float, Sound]] = []
    for start in range(0, mix.size, RATE // 10):
        live.append(mix[start:start + RATE // 10])
        settled += [(start / RATE, sound) for sound in live.step()]
    settled += [(mix.size / RATE, sound) for sound in live.finish()]
    whole = sounds.merge(sounds.patch_labels(sounds.classify(mix)), 0.0, mix.size / RATE)
    assert [sound for _, sound in settled] == whole == live.heard()
    (music_at, music), (_, clapping) = settled[:2]
    assert [sound.label for _, sound in settled[1:]] == ["applause", *["cheering", "applause"] * 2]
    assert music.label == "music"
    assert music.end < music_at < clapping.start + 2.0, "sent soon after the tune ends"
    assert live.finish() == []
