"""Browser fixtures: Debian's chromium driven by Playwright, with jfk.flac as its microphone."""

from __future__ import annotations

import itertools
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
from live_client import Streamer, events_until_end, open_session, pcm16, receive, ws_url
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright
from support import Process, debian_tool

TESTS = Path(__file__).resolve().parent.parent
JFK = TESTS / "data" / "jfk.flac"
JFK_SECONDS = 11.0
# After jfk.flac, the long speaker reads LJ Speech passages (36 s the four), for at least
# LONG_SPEECH_SECONDS in all, and longer where the live worker decodes slower (`long_speech`).
PASSAGES = [TESTS / "data" / f"LJ001-000{i}.flac" for i in (1, 3, 5, 7)]
PASSAGES_SECONDS = 36.0
LONG_SPEECH_SECONDS = 47.5
MOST_SPEECH_SECONDS = 240.0
ARTIFACTS = TESTS / "artifacts"
DESKTOP = {"viewport": {"width": 1040, "height": 800}, "device_scale_factor": 2}  # crisp pictures
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,  # honours the viewport meta tag, as a phone does
    "has_touch": True,
}
MIC_RATE = 48000  # Chromium's capture rate; it resamples other rates, but this needs nothing
MIC_LEAD_SECONDS = 0.5  # silence before the speech, so the first word is never cut


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium (Playwright's own browser downloads are not available offline)."""
    return debian_tool("chromium")


def write_speech_wav(sources: list[Path], target: Path) -> Path:
    """Decode `sources`, one after the other, to 16-bit mono PCM WAV, the format Chromium's
    fake microphone reads."""
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(b"\0\0" * int(MIC_LEAD_SECONDS * MIC_RATE))
        for source in sources:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=MIC_RATE)
            with av.open(str(source)) as container:
                for frame in [*container.decode(audio=0), None]:
                    for pcm in resampler.resample(frame):
                        out.writeframes(pcm.to_ndarray().tobytes())
    return target


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the session: its sync API runs one instance per thread."""
    with sync_playwright() as running:
        yield running


def launch(playwright: Playwright, chromium: str, speech: Path) -> Iterator[Browser]:
    """Chromium whose microphone plays `speech` once."""
    args = [
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",
        # `%noloop`: play the file once, then silence (it loops by default).
        f"--use-file-for-fake-audio-capture={speech}%noloop",
        # The player's tests start playback from a script, without a click.
        "--autoplay-policy=no-user-gesture-required",
    ]
    launched = playwright.chromium.launch(executable_path=chromium, args=args)
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def browser(
    playwright: Playwright, chromium: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Chromium whose microphone says jfk.flac once."""
    speech = write_speech_wav([JFK], tmp_path_factory.mktemp("mic") / "jfk.wav")
    yield from launch(playwright, chromium, speech)


@pytest.fixture(scope="session")
def live_lag(api_url: str, live_worker: Process) -> float:
    """How far behind the speaker the live worker's captions are on this machine now: seconds
    from the last of jfk.flac sent at real time until its last word ("country") shows."""
    with open_session(ws_url(api_url)) as (ws, started):
        assert started["type"] == "started", started
        streamer = Streamer(ws, pcm16(JFK))
        while True:
            event = receive(ws, timeout=120)
            shown = event.get("text") or event.get("segment", {}).get("text", "")
            if "countr" in shown.lower() or event["type"] in ("done", "error"):
                break
        assert "countr" in shown.lower(), event
        streamer.thread.join()  # then it sends `stop`
        assert streamer.finished_at is not None
        lag = max(0.0, time.monotonic() - streamer.finished_at)
        # The live worker holds one session: this one ends before a page asks for its own.
        assert events_until_end(ws)[-1][1]["type"] == "done"
        return lag


@dataclass
class Speech:
    path: Path
    seconds: float


@pytest.fixture(scope="session")
def long_speech(live_lag: float, tmp_path_factory: pytest.TempPathFactory) -> Speech:
    """jfk.flac, then passages long enough that the live worker, at the pace `live_lag` measured,
    shows jfk.flac's words while the speaker still speaks: three times the lag (the browser
    and the page share the machine with the worker) and 15 s more, at least 47.5 s."""
    wanted = min(MOST_SPEECH_SECONDS, max(LONG_SPEECH_SECONDS, JFK_SECONDS + 3 * live_lag + 15))
    rounds = max(1, -int(-(wanted - JFK_SECONDS) // PASSAGES_SECONDS))
    sources = [JFK, *itertools.chain.from_iterable([PASSAGES] * rounds)]
    path = write_speech_wav(sources, tmp_path_factory.mktemp("mic") / "long.wav")
    return Speech(path, JFK_SECONDS + rounds * PASSAGES_SECONDS)


@pytest.fixture(scope="session")
def long_speaker(playwright: Playwright, chromium: str, long_speech: Speech) -> Iterator[Browser]:
    """Chromium whose microphone says jfk.flac, then goes on speaking (`long_speech`): live
    captions must show while the speaker still speaks, and a busy machine decodes its first
    words several seconds late."""
    yield from launch(playwright, chromium, long_speech.path)


def open_page(browser: Browser, url: str, **options: object) -> Iterator[Page]:
    """A fresh page at `url`; a script error or a refused resource (CSP) fails the test."""
    context = browser.new_context(accept_downloads=True, **options)  # type: ignore[arg-type]
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(_unexpected(message)))
    page.goto(url)
    yield page
    context.close()
    assert not errors, f"errors on the page: {errors}"


def _unexpected(message: ConsoleMessage) -> list[str]:
    """A console error other than a failed request (those the tests provoke on purpose)."""
    expected = message.text.startswith("Failed to load resource")
    return [message.text] if message.type == "error" and not expected else []


@pytest.fixture
def page(browser: Browser, api_url: str, worker: object) -> Iterator[Page]:
    """The page at desktop width, served by the real API with a worker behind it."""
    yield from open_page(browser, f"{api_url}/", **DESKTOP)


@pytest.fixture
def phone(browser: Browser, api_url: str, worker: object) -> Iterator[Page]:
    """The page on a phone-sized screen (390 x 844 CSS pixels)."""
    yield from open_page(browser, f"{api_url}/", **PHONE)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """tests/artifacts/ (gitignored): screenshots to look at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
