"""The page against an API that requires keys: it asks for one, keeps it for the tab, sends it,
and forgets it on request (real chromium, real auth-required API and worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import srt
from playwright.sync_api import Browser, Locator, Page, expect
from support import Process, make_key

from browser.conftest import DESKTOP, JFK, open_page
from browser.test_page import submit, transcript_words, words


@pytest.fixture
def keyed_page(browser: Browser, auth_api: tuple[Process, str]) -> Iterator[Page]:
    yield from open_page(browser, f"{auth_api[1]}/", **DESKTOP)


def key_dialog(page: Page) -> Locator:
    return page.get_by_role("dialog", name="API key needed")


def test_the_page_asks_for_a_key_keeps_it_for_the_tab_and_forgets_it(
    keyed_page: Page, redis_url: str, artifacts: Path, tmp_path: Path
) -> None:
    page = keyed_page
    _, token = make_key(redis_url, "browser")
    page.get_by_label("Choose an audio or video file").set_input_files(JFK)
    page.get_by_label("Download format").select_option("srt")
    submit(page)

    dialog = key_dialog(page)
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill("vb_not-a-key-of-this-server")
    dialog.get_by_role("button", name="Use key").click()
    expect(dialog).to_contain_text("refused")
    page.screenshot(path=artifacts / "api-key-dialog.png")
    dialog.get_by_label("API key").fill(token)
    dialog.get_by_role("button", name="Use key").click()
    assert "ask not what your country can do for you" in transcript_words(page)
    assert page.evaluate("sessionStorage.getItem('verbatim.apiKey')") == token

    with page.expect_download() as started:  # a link sends no header: the key rides along
        page.get_by_role("link", name="Download .srt").click()
    saved = tmp_path / "jfk.srt"
    started.value.save_as(saved)
    assert "ask not what your country" in words(" ".join(
        cue.content for cue in srt.parse(saved.read_text())))

    page.reload()  # the key stays for the tab: the job comes back without a question
    assert "ask not what your country" in transcript_words(page)
    expect(key_dialog(page)).to_be_hidden()

    page.get_by_role("button", name="Forget API key").click()
    assert page.evaluate("sessionStorage.getItem('verbatim.apiKey')") is None
    expect(page.get_by_role("button", name="Forget API key")).to_be_hidden()
    page.reload()
    expect(key_dialog(page)).to_be_visible()
    key_dialog(page).get_by_role("button", name="Cancel").click()
    expect(page.locator("#error-text")).to_contain_text("needs an API key")


def test_the_page_sends_no_key_question_where_auth_is_off(page: Page) -> None:
    page.get_by_label("Choose an audio or video file").set_input_files(JFK)
    submit(page)
    assert "ask not what your country" in transcript_words(page)
    expect(key_dialog(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Forget API key")).to_be_hidden()
