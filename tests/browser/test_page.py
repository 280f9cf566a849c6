"""The page at `/` in a real chromium, against the real API, worker and model."""

from __future__ import annotations

import re
import string
import time
from pathlib import Path

import httpx
import srt
from playwright.sync_api import Locator, Page, expect

from browser.conftest import JFK, MIC_LEAD_SECONDS
from shared.languages import WHISPER_LANGUAGES

JOB_TIMEOUT_MS = 180_000
RECORD_SECONDS = 12.5  # the 11 s of jfk after the lead-in silence
PHONE_WIDTH = 390


def words(text: str) -> str:
    return " ".join(text.lower().translate(str.maketrans("", "", string.punctuation)).split())


def submit(page: Page) -> None:
    page.get_by_role("button", name="Transcribe", exact=True).click()


def transcript_heading(page: Page) -> Locator:
    return page.get_by_role("heading", name="Transcript", exact=True)


def transcript_words(page: Page) -> str:
    """The transcript's text once the page shows it (the segments, not their timestamps)."""
    expect(transcript_heading(page)).to_be_visible(timeout=JOB_TIMEOUT_MS)
    return words(" ".join(page.locator(".segment-text").all_inner_texts()))


def test_upload_shows_the_transcript_and_downloads_srt(
    page: Page, artifacts: Path, tmp_path: Path
) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(JFK)
    expect(page.locator("#chosen-name")).to_contain_text("jfk.flac")
    page.get_by_label("Download format").select_option("srt")
    submit(page)

    assert "ask not what your country can do for you" in transcript_words(page)
    expect(page.locator("#result-meta")).to_contain_text("English")
    page.mouse.move(0, 0)  # no hover effect in the picture
    page.screenshot(path=artifacts / "jfk-transcript.png", full_page=True)

    with page.expect_download() as started:
        page.get_by_role("link", name="Download .srt").click()
    download = started.value
    assert download.suggested_filename == "jfk.srt"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    cues = list(srt.parse(saved.read_text()))
    assert "ask not what your country" in words(" ".join(cue.content for cue in cues))
    for cue in cues:
        assert 0 <= cue.start.total_seconds() < cue.end.total_seconds() <= 11.0 + 0.01


def test_recording_from_the_microphone_is_transcribed(page: Page) -> None:
    page.get_by_role("button", name="Record from microphone").click()
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    page.wait_for_timeout((MIC_LEAD_SECONDS + RECORD_SECONDS) * 1000)
    expect(page.get_by_label("Recording time")).to_have_text(re.compile(r"0:1[2-9]"))
    stop.click()
    expect(page.locator("#chosen-name")).to_contain_text("recording.webm")
    submit(page)

    heard = set(transcript_words(page).split())
    assert len(heard & {"fellow", "americans", "american", "ask", "country"}) >= 3, heard


def test_a_file_that_is_not_audio_is_explained_in_words(page: Page) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(
        {"name": "fake.mp3", "mimeType": "audio/mpeg", "buffer": b"Just some text.\n" * 64}
    )
    submit(page)

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("fake.mp3")
    text = alert.inner_text()
    assert "is not an audio or video file" in text
    assert '{"error"' not in text
    assert "unsupported_media" not in text
    expect(transcript_heading(page)).to_be_hidden()


def test_an_unreachable_server_is_explained_in_words(page: Page) -> None:
    page.route("**/v1/jobs", lambda route: route.abort("connectionrefused"))
    page.get_by_label("Choose an audio or video file").set_input_files(JFK)
    submit(page)

    expect(page.get_by_role("alert")).to_contain_text("Could not reach the server")


def assert_fits(page: Page) -> None:
    assert page.evaluate("innerWidth") == PHONE_WIDTH  # the viewport meta tag is honoured
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def test_phone_width_shows_every_control_without_sideways_scrolling(
    phone: Page, artifacts: Path
) -> None:
    controls = [
        phone.get_by_label("Choose an audio or video file"),
        phone.get_by_role("button", name="Record from microphone"),
        phone.get_by_label("Language"),
        phone.get_by_label("Task"),
        phone.get_by_label("Download format"),
        phone.get_by_role("button", name="Transcribe", exact=True),
    ]
    for control in controls:
        control.scroll_into_view_if_needed()
        expect(control).to_be_visible()
        box = control.bounding_box()
        assert box is not None
        assert 0 <= box["x"] <= box["x"] + box["width"] <= PHONE_WIDTH
    assert_fits(phone)

    controls[0].set_input_files(JFK)
    submit(phone)
    assert "ask not" in transcript_words(phone)
    assert_fits(phone)
    phone.screenshot(path=artifacts / "phone-transcript.png", full_page=True)

    phone.reload()  # the job id in the address bar brings the transcript back
    assert "ask not" in transcript_words(phone)


def test_the_page_offers_exactly_the_languages_the_api_accepts(page: Page) -> None:
    offered = page.locator("#language option").evaluate_all("options => options.map(o => o.value)")
    assert offered[0] == "auto"
    assert sorted(offered[1:]) == sorted(WHISPER_LANGUAGES)


def test_the_model_chosen_on_the_page_is_the_model_the_job_runs_on(
    page: Page, api_url: str
) -> None:
    """The selector lists the models a running worker serves (the session's worker serves the
    whole catalogue); the job made with `tiny.en` chosen runs on `tiny.en`."""
    deadline = time.monotonic() + 30
    while not all(m["workers"] for m in httpx.get(f"{api_url}/v1/models").json()["data"]):
        assert time.monotonic() < deadline, "the worker never reported in"
        time.sleep(0.2)
    page.reload()  # the selector is filled once, as the page loads
    chooser = page.get_by_label("Model")
    expect(chooser.locator("option")).to_have_text(
        ["Server default", "base · default", "tiny.en (English only)"])
    chooser.select_option("tiny.en")
    page.get_by_label("Choose an audio or video file").set_input_files(JFK)
    submit(page)

    assert "ask not what your country can do for you" in transcript_words(page)
    found = re.search(r"#job=([0-9a-f]+)$", page.url)
    assert found, page.url
    job = httpx.get(f"{api_url}/v1/jobs/{found.group(1)}").json()
    assert (job["status"], job["options"]["model"]) == ("completed", "tiny.en")


def test_the_page_stays_out_of_the_api_schema(api_url: str) -> None:
    schema = httpx.get(f"{api_url}/openapi.json").json()
    assert "/" not in schema["paths"]
    assert httpx.get(f"{api_url}/static/app.js").status_code == 200
