"""The page shows segments as the worker decodes them (live.js), in a real chromium."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

FIRST_SEGMENT_TIMEOUT_MS = 120_000
JOB_TIMEOUT_MS = 180_000


def test_first_segment_shows_before_the_job_completes(
    page: Page, long_recording: Path, api_url: str, artifacts: Path
) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(long_recording)
    page.get_by_role("button", name="Transcribe", exact=True).click()

    first = page.locator("#live-segments li").first
    expect(first).to_be_visible(timeout=FIRST_SEGMENT_TIMEOUT_MS)
    expect(page.locator("#progress-card")).to_be_visible(timeout=1000)
    job_id = re.fullmatch(r"#job=(\w+)", page.evaluate("location.hash"))[1]  # type: ignore[index]
    job = httpx.get(f"{api_url}/v1/jobs/{job_id}", timeout=10).json()
    assert job["status"] == "processing", "the segment was shown only once the job was done"
    expect(first.locator(".segment-time")).to_have_text(re.compile(r"^0:00 \u2013 0:\d\d$"),
                                                        timeout=1000)
    expect(first.locator(".segment-text")).not_to_be_empty(timeout=1000)
    assert int(page.locator("#bar").get_attribute("aria-valuenow", timeout=1000) or 0) > 0
    page.screenshot(path=artifacts / "live-segments.png", full_page=True)

    expect(page.get_by_role("heading", name="Transcript", exact=True)).to_be_visible(
        timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#live-segments")).to_be_hidden(timeout=1000)
    srt = page.get_by_role("link", name=".srt", exact=True)
    # The query, if any, is the player's cue options (player.js).
    expect(srt).to_have_attribute(
        "href", re.compile(rf"^/v1/jobs/{job_id}/transcript\.srt(\?.*)?$"), timeout=1000)
    done = httpx.get(f"{api_url}/v1/jobs/{job_id}/transcript.json", timeout=10).json()
    shown = page.locator("#segments .segment-text").all_inner_texts()
    assert shown == [segment["text"].strip() for segment in done["segments"]]
