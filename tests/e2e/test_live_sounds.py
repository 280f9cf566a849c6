"""Sounds in a live session (issue 25), with the real API, live worker, models and Redis: a
session that asks for `sounds` hears a tune, then JFK, then an audience; the tune is sent as a
`sound` event while the session is still open, the audience as it ends, and the saved job's
json carries both."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from live_client import events_until_end, open_session, receive, started_session, stop, ws_url
from support import DATA, Process, wait_for_job
from synthetic import melody
from websockets.sync.client import ClientConnection

from worker.audio import pcm_blocks

TUNE_SECONDS, QUIET_SECONDS = 8.0, 3.0


def pcm(samples: np.ndarray) -> bytes:
    return samples.astype("<i2").tobytes()


def clip(name: str) -> np.ndarray:
    return np.concatenate(list(pcm_blocks(DATA / name, 3600)))


def send(ws: ClientConnection, audio: bytes, frame: int = 3200) -> None:
    for start in range(0, len(audio), frame):
        ws.send(audio[start:start + frame])


def test_a_session_with_sounds_sends_them_and_its_job_keeps_them(
    api_url: str, live_worker: Process, client: httpx.Client
) -> None:
    # Quiet longer than the two steps a sound bridges: the tune's sound has ended.
    silence = np.zeros(int(QUIET_SECONDS * 16000), np.int16)
    with started_session(ws_url(api_url), sounds=True) as (ws, started):
        send(ws, pcm(np.concatenate([melody(TUNE_SECONDS), silence])))
        before_stop = []
        while not any(event["type"] == "sound" for event in before_stop):
            before_stop.append(receive(ws, timeout=60))
            assert before_stop[-1]["type"] not in ("done", "error"), before_stop
        send(ws, pcm(np.concatenate([clip("jfk.flac"), clip("applause.flac")])))
        stop(ws)
        after_stop = [event for _, event in events_until_end(ws)]
    assert after_stop[-1]["type"] == "done", after_stop[-1]
    music = next(event["sound"] for event in before_stop if event["type"] == "sound")
    assert (music["label"], music["start"]) == ("music", 0.0)
    assert music["end"] == pytest.approx(TUNE_SECONDS, abs=1.0)
    later = [event["sound"] for event in after_stop if event["type"] == "sound"]
    # The audience, heard cheering (and at its very end, clapping: docs/guides/sounds.md).
    assert later, after_stop
    assert later[0]["label"] == "cheering", later
    assert {s["label"] for s in later} <= {"cheering", "applause"}, later
    assert later[0]["start"] >= TUNE_SECONDS + QUIET_SECONDS + 10.0

    job = wait_for_job(client, started["job_id"])
    assert job["options"]["sounds"] is True
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert "ask not what your country can do for you" in transcript["text"].lower()
    assert transcript["sounds"] == [music, *later]


def test_a_session_without_sounds_sends_none(
    api_url: str, live_worker: Process, client: httpx.Client
) -> None:
    with started_session(ws_url(api_url)) as (ws, started):
        send(ws, pcm(melody(3.0)))
        stop(ws)
        events = [event for _, event in events_until_end(ws)]
    assert events[-1]["type"] == "done"
    assert not [event for event in events if event["type"] == "sound"]
    transcript = client.get(f"/v1/jobs/{started['job_id']}/transcript.json").json()
    assert transcript.get("sounds") is None


@pytest.mark.parametrize("value", ["maybe", 3, [True]])
def test_a_bad_sounds_value_is_refused(api_url: str, value: object) -> None:
    with open_session(ws_url(api_url), sounds=value) as (_, first):
        assert first["type"] == "error"
        assert first["code"] == "invalid_option"
        assert "sounds" in first["message"]
