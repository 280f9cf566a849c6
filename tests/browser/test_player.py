"""The player beside the transcript (issue 14), in a real chromium against the real API (one
that keeps recordings), worker and model. Every wait has a timeout, so a recording that never
loads fails the test instead of hanging it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import srt
from playwright.sync_api import Browser, Page, expect
from support import submit, wait_for_job

from browser.conftest import DESKTOP, JFK, open_page
from shared.output.subtitles import display_width

WAIT_MS = 30_000


@pytest.fixture(scope="module")
def kept_job(keeping_api_url: str, worker: object, long_recording: Path) -> dict:
    with httpx.Client(base_url=keeping_api_url, timeout=30) as http:
        job = submit(http, long_recording, word_timestamps="true")
        assert wait_for_job(http, job["id"])["status"] == "completed"
        transcript = http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert len(transcript["segments"]) >= 2, transcript
    return {"id": job["id"], "segments": transcript["segments"]}


@pytest.fixture
def listening(browser: Browser, keeping_api_url: str, kept_job: dict) -> Iterator[Page]:
    """The page reopened on the kept job, its recording loaded."""
    for page in open_page(browser, f"{keeping_api_url}/#job={kept_job['id']}", **DESKTOP):
        page.set_default_timeout(WAIT_MS)
        expect(page.locator("#player-audio")).to_be_visible()
        page.wait_for_function("() => document.getElementById('player-audio').readyState >= 1",
                               timeout=WAIT_MS)
        page.evaluate("document.getElementById('player-audio').muted = true")
        yield page


def current_time(page: Page) -> float:
    return float(page.evaluate("document.getElementById('player-audio').currentTime"))


def wait_for_time_near(page: Page, seconds: float) -> None:
    """Until the audio element's position is within a second after `seconds` (it may play)."""
    page.wait_for_function(
        "(at) => { const t = document.getElementById('player-audio').currentTime;"
        " return t >= at - 0.05 && t < at + 1; }", arg=seconds, timeout=WAIT_MS)


def test_clicking_a_segment_seeks_the_audio_to_its_start(
    listening: Page, kept_job: dict
) -> None:
    second = kept_job["segments"][1]
    listening.locator(".segment-time").nth(1).click()
    wait_for_time_near(listening, second["start"])
    assert second["start"] - 0.05 <= current_time(listening) < second["start"] + 1
    expect(listening.locator(".segment").nth(1)).to_have_class("segment current")


def test_clicking_a_word_seeks_to_the_word(listening: Page, kept_job: dict) -> None:
    word = kept_job["segments"][0]["words"][3]
    listening.locator(".segment").first.locator(".word").nth(3).click()
    wait_for_time_near(listening, word["start"])
    assert current_time(listening) >= word["start"] - 0.05


def test_the_highlight_follows_playback(listening: Page, kept_job: dict) -> None:
    boundary = kept_job["segments"][1]["start"]
    listening.evaluate(f"""() => {{
        const audio = document.getElementById('player-audio');
        audio.currentTime = {max(0.0, boundary - 1.0)};
        return audio.play();
    }}""")
    expect(listening.locator(".segment.current")).to_have_count(1)
    first = listening.locator(".segment").first
    expect(first).to_have_class("segment current")
    expect(listening.locator(".segment").nth(1)).to_have_class("segment current",
                                                               timeout=WAIT_MS)
    expect(first).to_have_class("segment")
    assert current_time(listening) >= boundary
    listening.evaluate("document.getElementById('player-audio').pause()")


def test_search_finds_words_and_enter_seeks_to_them(listening: Page, kept_job: dict) -> None:
    texts = [segment["text"].lower() for segment in kept_job["segments"]]
    needle = max((w.strip(".,;!?") for w in texts[1].split() if w.strip(".,;!?") not in
                  texts[0]), key=len)
    box = listening.get_by_placeholder("Find words")
    box.fill(needle.upper())
    count = sum(text.count(needle) for text in texts)
    expect(listening.locator("#player-matches")).to_have_text(
        f"{count} match{'' if count == 1 else 'es'}")
    expect(listening.locator(".segments mark")).to_have_count(count)
    box.press("Enter")
    start = next(w["start"] for s in kept_job["segments"] for w in s["words"]
                 if needle in w["word"].lower())
    wait_for_time_near(listening, start)
    box.fill("")
    expect(listening.locator(".segments mark")).to_have_count(0)


def test_srt_downloaded_with_width_and_lines_obeys_both(
    listening: Page, tmp_path: Path
) -> None:
    listening.locator("#cue-preset").select_option("")
    listening.locator("#cue-width").fill("32")
    listening.locator("#cue-lines").fill("2")
    with listening.expect_download(timeout=WAIT_MS) as started:
        listening.locator('.other-formats [data-format="srt"]').click()
    saved = tmp_path / started.value.suggested_filename
    started.value.save_as(saved)
    cues = list(srt.parse(saved.read_text()))
    assert len(cues) >= 2
    for cue in cues:
        lines = cue.content.split("\n")
        assert len(lines) <= 2
        assert all(display_width(line) <= 32 for line in lines), cue.content


def test_without_kept_recordings_the_page_says_so(page: Page) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(JFK)
    page.get_by_role("button", name="Transcribe", exact=True).click()
    expect(page.locator("#player-note")).to_contain_text("does not keep recordings",
                                                         timeout=180_000)
    expect(page.locator("#player-audio")).to_be_hidden()


def test_a_recent_job_reopens_with_its_recording(
    browser: Browser, keeping_api_url: str, kept_job: dict
) -> None:
    for page in open_page(browser, f"{keeping_api_url}/", **DESKTOP):
        page.set_default_timeout(WAIT_MS)
        link = page.locator(f'#recent-jobs a[href="#job={kept_job["id"]}"]')
        expect(link).to_be_visible()
        link.click()
        expect(page.get_by_role("heading", name="Transcript", exact=True)).to_be_visible()
        expect(page.locator(".segment")).to_have_count(len(kept_job["segments"]))
        expect(page.locator("#player-audio")).to_be_visible()
