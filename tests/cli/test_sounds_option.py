"""`verbatim transcribe --sounds` and `--preset sdh` (issue 25), against the real API, worker and
models, on JFK's speech then a tune."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import numpy as np
import pytest
import srt
from support import DATA, write_audio
from synthetic import melody

from worker.audio import pcm_blocks

Verbatim = Callable[..., CompletedProcess[str]]


@pytest.fixture(scope="module")
def speech_then_music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    jfk = np.concatenate(list(pcm_blocks(DATA / "jfk.flac", 3600)))
    return write_audio(tmp_path_factory.mktemp("cli-sounds") / "talk.flac",
                       np.concatenate([jfk, melody(6.0)]))


def test_sounds_puts_the_tune_in_the_json(server: str, verbatim: Verbatim,
                                          speech_then_music: Path, tmp_path: Path) -> None:
    audio = Path(shutil.copy(speech_then_music, tmp_path / "talk.flac"))
    result = verbatim("transcribe", audio, "--server", server, "--sounds", "-f", "json")
    assert result.returncode == 0, result.stderr
    transcript = json.loads((tmp_path / "talk.json").read_text())
    assert [(s["label"], round(s["start"])) for s in transcript["sounds"]] == [("music", 11)]


def test_the_sdh_preset_asks_for_sounds_and_no_sounds_turns_them_off(
    server: str, verbatim: Verbatim, speech_then_music: Path, tmp_path: Path
) -> None:
    audio = Path(shutil.copy(speech_then_music, tmp_path / "talk.flac"))
    result = verbatim("transcribe", audio, "--server", server, "--preset", "sdh", "-f", "srt")
    assert result.returncode == 0, result.stderr
    cues = list(srt.parse((tmp_path / "talk.srt").read_text()))
    assert cues[-1].content == "[MUSIC]", [cue.content for cue in cues]
    assert "country" in cues[-2].content
    result = verbatim("transcribe", audio, "--server", server, "--preset", "sdh", "--no-sounds",
                      "-f", "srt")
    assert result.returncode == 0, result.stderr
    assert "[MUSIC]" not in (tmp_path / "talk.srt").read_text()


def test_a_value_after_the_flag_fails_before_any_upload(verbatim: Verbatim, tmp_path: Path,
                                                        dead_url: str) -> None:
    audio = Path(shutil.copy(DATA / "jfk.flac", tmp_path / "jfk.flac"))
    result = verbatim("transcribe", audio, "--server", dead_url, "--sounds=maybe")
    assert result.returncode == 2
    assert "--sounds" in result.stderr
