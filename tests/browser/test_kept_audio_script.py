"""A kept recording never runs as a page on the API's origin (issue 26, item 7): an upload
named `clip.html` holding a valid WAV with a `<script>` in its samples, opened in a real
chromium, plays as media and runs nothing, with the key the page keeps left unread."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser
from support import wait_for_job, write_scripted_wav

# What the script would do on the API's origin: read the key the page keeps, leave a mark.
SCRIPT = ("localStorage.setItem('ran', sessionStorage.getItem('verbatim-key') || 'yes');"
          "document.title = 'ran';")


@pytest.fixture(scope="module")
def scripted_job(keeping_api_url: str, worker: object, tmp_path_factory: pytest.TempPathFactory
                 ) -> str:
    recording = write_scripted_wav(tmp_path_factory.mktemp("xss") / "clip.wav", SCRIPT)
    with httpx.Client(base_url=keeping_api_url, timeout=30) as http, recording.open("rb") as f:
        created = http.post("/v1/jobs", files={"file": ("clip.html", f, "text/html")})
        assert created.status_code == 202, created.text
        assert wait_for_job(http, created.json()["id"])["status"] == "completed"
    return str(created.json()["id"])


def test_a_recording_named_html_runs_no_script_on_the_api_origin(
    browser: Browser, keeping_api_url: str, scripted_job: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{keeping_api_url}/")  # the API's own page: its origin's storage is there
        page.evaluate("sessionStorage.setItem('verbatim-key', 'vb_secret')")
        response = page.goto(f"{keeping_api_url}/v1/jobs/{scripted_job}/audio")
        assert response is not None
        assert response.status == 200  # `goto` waits for the load: an inline script ran by now
        assert page.title() != "ran"
        page.goto(f"{keeping_api_url}/")
        assert page.evaluate("localStorage.getItem('ran')") is None
    finally:
        context.close()
