"""Sounds on the page (issue 25), in a real chromium against the real API, worker and models: a
recording sent with sounds tagged, downloaded as SRT with the `sdh` style, holds a `[MUSIC]`
cue after the speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import srt
from playwright.sync_api import Page, expect
from support import DATA, write_audio
from synthetic import melody

from worker.audio import pcm_blocks

JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def speech_then_music(tmp_path_factory: pytest.TempPathFactory) -> Path:
    jfk = np.concatenate(list(pcm_blocks(DATA / "jfk.flac", 3600)))
    return write_audio(tmp_path_factory.mktemp("page-sounds") / "talk.flac",
                       np.concatenate([jfk, melody(6.0)]))


def test_the_sdh_style_downloads_a_music_cue_after_the_speech(
    page: Page, speech_then_music: Path, tmp_path: Path, artifacts: Path
) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(speech_then_music)
    page.get_by_label("Sounds").select_option("true")
    page.get_by_label("Download format").select_option("srt")
    page.get_by_role("button", name="Transcribe", exact=True).click()
    expect(page.get_by_role("heading", name="Transcript", exact=True)).to_be_visible(
        timeout=JOB_TIMEOUT_MS)

    style = page.get_by_label("Style")
    expect(style.locator('option[value="sdh"]')).to_have_text("SDH: broadcast, with [MUSIC] cues")
    style.select_option("sdh")
    page.screenshot(path=artifacts / "sdh-style.png", full_page=True)
    with page.expect_download() as started:
        page.get_by_role("link", name="Download .srt").click()
    saved = tmp_path / started.value.suggested_filename
    started.value.save_as(saved)
    cues = list(srt.parse(saved.read_text()))
    assert cues[-1].content == "[MUSIC]", [cue.content for cue in cues]
    assert "country" in cues[-2].content
    assert cues[-2].end <= cues[-1].start
