"""Live transcription on the page: Chromium's fake microphone speaks into `Transcribe live`
(jfk.flac, then more speech), the words show while the speaker still speaks, and Stop gives the
downloads (real API, live worker, model).

The speaker goes on for 47 s or more, so that "while speaking" holds at the pace the live worker
really decodes at on this machine (`long_speech` measures it first): on a quiet one jfk.flac's
words show within a few seconds of being said; on a busy one the first decode alone can take
longer than jfk.flac's 11 s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import srt
from playwright.sync_api import Browser, Page, expect
from support import Process, make_key

from browser.conftest import DESKTOP, MIC_LEAD_SECONDS, Speech, open_page
from browser.test_page import words

# Stems of jfk.flac's words ("America"/"Americans", "ask"/"asked" both count); "countr" is its
# last.
STEMS = ("fellow", "americ", "ask", "not", "countr")
DONE_TIMEOUT_MS = 60_000


@pytest.fixture
def speaking_page(long_speaker: Browser, api_url: str, worker: object) -> Iterator[Page]:
    """The page at desktop width, in a browser whose microphone speaks for 47 s or more."""
    yield from open_page(long_speaker, f"{api_url}/", **DESKTOP)


def live_words(page: Page) -> set[str]:
    return set(words(" ".join(page.locator("#live-lines .segment-text").all_inner_texts())).split())


def stems(heard: set[str]) -> set[str]:
    return {stem for stem in STEMS if any(word.startswith(stem) for word in heard)}


def start_live(page: Page) -> float:
    """Clicks `Transcribe live`; the time of the click."""
    # English, as a speaker would pick: detecting the language is the server's cost, not the
    # page's, and a busy 2-core machine pays seconds for it.
    page.get_by_label("Language").select_option("en")
    page.get_by_role("button", name="Transcribe live").click()
    return time.monotonic()


def heard_while_speaking(page: Page, spoken: float, enough: int) -> tuple[set[str], bool]:
    """The words on the page before Stop, watched until `enough` of jfk.flac's stems show or
    the speaker stops speaking (`spoken`), and whether provisional (grey, italic) text showed on
    the way."""
    provisional = False
    heard: set[str] = set()
    while time.monotonic() < spoken and len(stems(heard)) < enough:
        heard = live_words(page)
        shown = page.locator("#live-lines .provisional .segment-text")
        if shown.count():
            provisional = provisional or shown.first.evaluate(
                "(text) => getComputedStyle(text).fontStyle") == "italic"
        page.wait_for_timeout(100)
    return heard, provisional


def stop_and_download_srt(page: Page, tmp_path: Path) -> list[srt.Subtitle]:
    page.get_by_role("button", name="Stop live transcription").click()
    link = page.get_by_role("link", name="Download the live transcript as .srt")
    expect(link).to_be_visible(timeout=DONE_TIMEOUT_MS)
    expect(page.locator("#live-lines .provisional")).to_have_count(0)
    with page.expect_download() as started:
        link.click()
    saved = tmp_path / "live.srt"
    started.value.save_as(saved)
    return list(srt.parse(saved.read_text()))


def test_live_text_shows_while_speaking_and_stop_gives_the_downloads(
    speaking_page: Page, long_speech: Speech, artifacts: Path, tmp_path: Path
) -> None:
    page = speaking_page
    spoken = start_live(page) + MIC_LEAD_SECONDS + long_speech.seconds
    heard, provisional = heard_while_speaking(page, spoken, enough=3)
    assert len(stems(heard)) >= 3, heard
    assert provisional, "no provisional text was shown"
    page.screenshot(path=artifacts / "live-transcript.png", full_page=True)
    # Stopped once jfk.flac's last word shows, while the speaker still speaks: Stop confirms
    # what was heard up to then.
    heard, _ = heard_while_speaking(page, spoken, enough=len(STEMS))
    assert "countr" in stems(heard), heard

    cues = stop_and_download_srt(page, tmp_path)
    finals = live_words(page)
    assert len(stems(finals)) >= 3, finals
    assert "country" in words(" ".join(cue.content for cue in cues))
    expect(page.get_by_role("button", name="Transcribe live")).to_be_enabled()


def test_a_browser_that_records_no_webm_streams_pcm(
    speaking_page: Page, long_speech: Speech, tmp_path: Path
) -> None:
    """Safari before 18.4 records no WebM/Opus: the page sends PCM16 from an AudioWorklet."""
    page = speaking_page
    page.add_init_script("MediaRecorder.isTypeSupported = () => false;")
    page.reload()
    spoken = start_live(page) + MIC_LEAD_SECONDS + long_speech.seconds
    heard, _ = heard_while_speaking(page, spoken, enough=1)
    assert stems(heard), heard
    stop_and_download_srt(page, tmp_path)


@pytest.fixture
def keyed_page(browser: Browser, auth_api: tuple[Process, str]) -> Iterator[Page]:
    yield from open_page(browser, f"{auth_api[1]}/", **DESKTOP)


def test_with_keys_on_live_asks_for_a_key_and_sends_it(
    keyed_page: Page, live_worker: Process, redis_url: str, tmp_path: Path
) -> None:
    page = keyed_page
    _, token = make_key(redis_url, "live-browser")
    dialog = page.get_by_role("dialog", name="API key needed")

    page.get_by_role("button", name="Transcribe live").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("alert")).to_contain_text("needs an API key")

    start_live(page)
    dialog.get_by_label("API key").fill(token)
    dialog.get_by_role("button", name="Use key").click()
    expect(page.get_by_role("status").filter(has_text="Listening")).to_be_visible()
    stop_and_download_srt(page, tmp_path)  # the link carries the key, or the download fails
    link = page.get_by_role("link", name="Download the live transcript as .srt")
    assert f"access_token={token}" in (link.get_attribute("href") or "")
