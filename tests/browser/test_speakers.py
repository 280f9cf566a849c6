"""Speakers on the page (issue 21) in a real chromium, against the real API, worker and
model: a stereo call labelled by channel, each speaker in a colour of its own, renamed for the
downloads, the name saved with the job, so that a reload shows it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from browser.test_page import JOB_TIMEOUT_MS, submit, transcript_heading

STEREO = Path(__file__).resolve().parent.parent / "data" / "stereo_diarization.flac"


def test_speakers_show_in_colour_and_renames_reach_the_download_and_are_saved(
    page: Page, artifacts: Path, tmp_path: Path
) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(STEREO)
    page.get_by_label("Speakers").select_option("channels")
    page.get_by_label("Download format").select_option("txt")
    submit(page)
    expect(transcript_heading(page)).to_be_visible(timeout=JOB_TIMEOUT_MS)

    chips = page.locator("#segments .segment-speaker")
    expect(chips).to_have_count(2)
    assert sorted(chips.all_inner_texts()) == ["S1", "S2"]
    colours = {chip.evaluate("node => getComputedStyle(node).color") for chip in chips.all()}
    assert len(colours) == 2

    page.get_by_label("Name for S1").fill("Agent")
    expect(chips.filter(has_text="Agent")).to_have_count(1)
    page.mouse.move(0, 0)
    page.screenshot(path=artifacts / "speakers.png", full_page=True)
    with page.expect_download() as started:
        page.get_by_role("link", name="Download .txt").click()
    saved = tmp_path / "call.txt"
    started.value.save_as(saved)
    assert _speakers_of(saved) == ["Agent", "S2"]
    assert any(turn.startswith("Agent: ") and "wizard" in turn for turn in _turns(saved))

    page.get_by_label("Name for S2").fill("Ann")
    page.get_by_label("Name for S2").press("Tab")  # leaving a field saves the names
    expect(page.get_by_role("status").filter(has_text="Names")).to_have_text(
        "Names saved with the job.")
    link = page.get_by_role("link", name="Download .txt")
    assert "speaker_names" not in (link.get_attribute("href") or "")  # saved: not needed

    page.reload()
    expect(transcript_heading(page)).to_be_visible(timeout=JOB_TIMEOUT_MS)
    expect(page.get_by_label("Name for S2")).to_have_value("Ann")
    expect(chips.filter(has_text="Ann")).to_have_count(1)
    assert sorted(chips.all_inner_texts()) == ["Agent", "Ann"]
    with page.expect_download() as started:
        page.get_by_role("link", name="Download .txt").click()
    started.value.save_as(saved)
    assert _speakers_of(saved) == ["Agent", "Ann"]
    assert any(turn.startswith("Ann: ") and "horizon" in turn for turn in _turns(saved))


def _turns(path: Path) -> list[str]:
    return path.read_text().strip().split("\n\n")


def _speakers_of(path: Path) -> list[str]:
    return sorted(turn.split(": ")[0] for turn in _turns(path))
