"""Live transcription over `WS /v1/live`, with the real API, live worker, model and Redis."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import httpx
import jiwer
import pytest
import redis
import srt
from live_client import (
    Streamer,
    close_code,
    events_until_end,
    first_finals,
    open_session,
    pcm16,
    plain,
    receive,
    received_so_far,
    start_message,
    started_session,
    stop,
    ws_url,
)
from support import DATA, Process, keyed_client, make_key, wait_for_job
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

REFERENCES = {item["file"]: item["reference"]
              for item in json.loads((DATA / "manifest.json").read_text())}


def words(text: str) -> list[str]:
    return jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis))))


def finals(events: list[tuple[float, dict]]) -> list[tuple[float, dict]]:
    return [(at, event["segment"]) for at, event in events if event["type"] == "final"]


# The `long_recording` fixture: four LJ Speech passages, 36 s of speech, long enough for captions
# to settle while it is still being sent on a busy 2-core machine (where one decode of the
# buffer can take several seconds).
PASSAGE = [f"LJ001-000{i}.flac" for i in (1, 3, 5, 7)]


def test_a_recording_streamed_at_real_time_is_captioned_as_it_is_spoken(
    api_url: str, live_worker: Process, client: httpx.Client, long_recording: Path
) -> None:
    reference = " ".join(REFERENCES[name] for name in PASSAGE)
    with open_session(ws_url(api_url), word_timestamps=True) as (ws, started):
        assert started["type"] == "started", started
        streamer = Streamer(ws, pcm16(long_recording))
        events = events_until_end(ws)
    assert events[-1][1]["type"] == "done", events[-1]
    segments = finals(events)
    # Captions settle while the speaker still speaks, not all at once when the recording ends:
    # a final arrives before the last of the audio is sent, then more of the stream is heard.
    assert streamer.finished_at is not None
    first_final_at = segments[0][0]
    assert first_final_at < streamer.finished_at, (first_final_at, streamer.finished_at)
    kinds = [event["type"] for _, event in events]
    assert "partial" in kinds[kinds.index("final"):], kinds
    text = "".join(segment["text"] for _, segment in segments)
    assert wer(reference, text) <= 0.15, text
    # Nothing is said twice across a boundary, and time only moves forward.
    for (_, before), (_, after) in itertools.pairwise(segments):
        assert words(before["text"])[-1] != words(after["text"])[0], (before, after)
        assert before["end"] <= after["start"] <= after["end"], (before, after)
    assert [segment["id"] for _, segment in segments] == list(range(len(segments)))
    assert all(segment["words"] for _, segment in segments)
    partials = [event for _, event in events if event["type"] == "partial"]
    assert partials
    assert all(isinstance(p["text"], str) for p in partials)

    done = events[-1][1]
    job = wait_for_job(client, done["job_id"])
    assert job["status"] == "completed"
    assert job["id"] == started["job_id"]
    assert done["links"]["srt"] == f"/v1/jobs/{job['id']}/transcript.srt"
    cues = list(srt.parse(client.get(done["links"]["srt"]).text))
    assert wer(reference, " ".join(cue.content for cue in cues)) <= 0.15


def test_a_client_that_closes_right_after_done_leaves_no_error_in_the_log(
    api_process: tuple[Process, str], live_worker: Process
) -> None:
    """A client may close its socket the moment `done` arrives, before the API closes it:
    that is an ordinary end, not an exception."""
    api, url = api_process
    before = len(api.output())
    for _ in range(3):
        with started_session(ws_url(url)) as (ws, _):
            ws.send(pcm16(DATA / "jfk.flac")[:32000])
            stop(ws)
            assert events_until_end(ws)[-1][1]["type"] == "done"
    time.sleep(1)  # the API's side of the last close
    assert "Exception in ASGI application" not in api.output()[before:]


def test_no_free_worker_is_said_at_once_and_a_client_that_leaves_frees_its_slot(
    api_url: str, live_worker: Process, client: httpx.Client, long_recording: Path
) -> None:
    audio = pcm16(long_recording, rate=48000)
    with started_session(ws_url(api_url), sample_rate=48000) as (ws, started):
        streamer = Streamer(ws, audio, rate=48000)
        # The live worker's one slot is taken: another session is refused, not kept waiting.
        began = time.monotonic()
        with open_session(ws_url(api_url)) as (_, refused):
            assert refused["type"] == "error"
            assert refused["code"] == "no_live_worker"
            assert time.monotonic() - began < 2.0  # the claim timeout (1 s) and a connection
        events = received_so_far(ws, time.monotonic() + 12)
    # The socket closed without `stop`: the session ends and its job keeps the words.
    streamer.thread.join()
    job = wait_for_job(client, started["job_id"])
    assert job["status"] == "completed"
    saved = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    confirmed = [event["segment"] for event in events if event["type"] == "final"]
    assert [plain(s) for s in saved["segments"]][:len(confirmed)] == [plain(s) for s in confirmed]
    assert "printing" in words(saved["text"])
    # The job holds the audio the worker had taken in when the client left (about 12 s; less
    # on a machine where it lags): what was still queued is dropped (issue 26).
    assert 0 < saved["duration"] < 20
    # Its slot is free again.
    with started_session(ws_url(api_url)) as (ws, _):
        stop(ws)
        assert events_until_end(ws)[-1][1]["type"] == "done"


def _start(**options: object) -> str:
    return start_message(**options)


@pytest.mark.parametrize(("first", "code"), [
    pytest.param(_start(encoding="mp3"), "unsupported_encoding", id="unknown-encoding"),
    pytest.param(_start(encoding=7), "unsupported_encoding", id="encoding-not-text"),
    pytest.param(_start(sample_rate=1000), "invalid_option", id="rate-too-low"),
    pytest.param(_start(sample_rate=96000), "invalid_option", id="rate-too-high"),
    pytest.param(_start(sample_rate=None), "invalid_option", id="pcm-without-rate"),
    pytest.param(_start(sample_rate="fast"), "invalid_option", id="rate-not-a-number"),
    pytest.param(_start(language="xx"), "invalid_option", id="unknown-language"),
    pytest.param(_start(language="en,de"), "invalid_option", id="several-languages"),
    pytest.param(_start(task="summarize"), "invalid_option", id="unknown-task"),
    pytest.param(_start(word_timestamps="lots"), "invalid_option", id="word-timestamps"),
    pytest.param(_start(colour="red"), "invalid_message", id="unknown-field"),
    pytest.param('{"type": "stop"}', "invalid_message", id="stop-before-start"),
    pytest.param("hello", "invalid_message", id="text-not-json"),
    pytest.param("[1, 2]", "invalid_message", id="json-not-an-object"),
    pytest.param(b"\x00\x01" * 800, "invalid_message", id="audio-before-start"),
])
def test_a_bad_first_message_is_refused_with_a_stable_code(
    api_url: str, first: str | bytes, code: str
) -> None:
    with connect(ws_url(api_url), open_timeout=10, close_timeout=30) as ws:
        ws.send(first)
        event = receive(ws)
        assert event["type"] == "error"
        assert event["code"] == code
        assert event["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_a_client_that_never_starts_is_told_so(api_url: str) -> None:
    with connect(ws_url(api_url), open_timeout=10, close_timeout=30) as ws:
        event = receive(ws, timeout=10)  # VERBATIM_LIVE_IDLE_TIMEOUT_SECONDS is 3 here
        assert event["type"] == "error"
        assert event["code"] == "idle_timeout"


@pytest.mark.parametrize(("frame", "code"), [
    pytest.param('{"type": "pause"}', "invalid_message", id="unknown-message"),
    pytest.param("not json", "invalid_message", id="text-not-json"),
])
def test_a_bad_message_mid_session_ends_it_with_a_stable_code(
    api_url: str, live_worker: Process, client: httpx.Client, frame: str | bytes, code: str
) -> None:
    with started_session(ws_url(api_url)) as (ws, started):
        ws.send(b"\x00\x00" * 1600)
        ws.send(frame)
        events = events_until_end(ws)
        assert events[-1][1]["code"] == code
    assert wait_for_job(client, started["job_id"])["status"] == "completed"


def test_a_frame_over_the_limit_closes_the_socket_as_too_big_and_the_job_keeps_its_words(
    api_url: str, live_worker: Process, client: httpx.Client
) -> None:
    with started_session(ws_url(api_url)) as (ws, started):
        ws.send(b"\x00\x00" * 1600)
        ws.send(b"\x00" * 70_000)  # VERBATIM_LIVE_MAX_FRAME_BYTES is 65536 here
        assert close_code(ws) == 1009  # message too big, from uvicorn
    assert wait_for_job(client, started["job_id"])["status"] == "completed"


def test_a_session_that_stalls_ends_with_idle_timeout_and_keeps_its_words(
    api_url: str, live_worker: Process, client: httpx.Client
) -> None:
    with started_session(ws_url(api_url)) as (ws, started):
        Streamer(ws, pcm16(DATA / "1089-134686-0001.flac"), seconds=3.3).thread.join()
        end = events_until_end(ws)[-1][1]  # no more audio, no stop
        assert end["type"] == "error"
        assert end["code"] == "idle_timeout"
    job = wait_for_job(client, started["job_id"])
    text = client.get(f"/v1/jobs/{job['id']}/transcript.txt").text
    assert {"into", "you", "his", "belly", "him"} <= set(words(text)), text


def test_live_sessions_need_a_key_and_their_jobs_stay_private(
    auth_api: tuple[Process, str], live_worker: Process, redis_url: str
) -> None:
    url = auth_api[1]
    _, token = make_key(redis_url, "live-owner", max_active_jobs=1)
    _, other = make_key(redis_url, "live-other")
    refusals = [(ws_url(url), {}), (ws_url(url, "vb_unknown"), {}),
                (ws_url(url), {"token": "vb_unknown"})]
    for address, options in refusals:
        with open_session(address, **options) as (_, refused):
            assert refused["type"] == "error"
            assert refused["code"] == "unauthorized"
    with started_session(ws_url(url), token=token) as (ws, started):
        # A session is one of the key's active jobs.
        with open_session(ws_url(url, token)) as (_, second):
            assert second["code"] == "too_many_active_jobs"
        stop(ws)
        assert events_until_end(ws)[-1][1]["type"] == "done"
    with started_session(ws_url(url, token)) as (ws, by_query):
        stop(ws)
        assert events_until_end(ws)[-1][1]["type"] == "done"
    with keyed_client(url, token) as owner, keyed_client(url, other) as stranger:
        for job_id in (started["job_id"], by_query["job_id"]):
            assert owner.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"
            response = stranger.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "job_not_found"


def test_a_live_worker_that_stops_answering_ends_the_session_and_the_job_keeps_the_words(
    api_url: str, live_worker: Process, client: httpx.Client, long_recording: Path,
    redis_client: redis.Redis,
) -> None:
    with started_session(ws_url(api_url)) as (ws, started):
        streamer = Streamer(ws, pcm16(long_recording))  # 36 s; the test ends at the first final
        confirmed = first_finals(ws)
        # Frozen, the worker stops keeping the session alive: as good as dead to the API.
        holder = int(redis_client.get(f"verbatim:live:{started['session_id']}:claim")
                     .decode().rsplit(":", 1)[1])
        os.kill(holder, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            events = events_until_end(ws)
            assert events[-1][1]["type"] == "error"
            assert events[-1][1]["code"] == "live_worker_lost"
            assert events[-1][0] - frozen < 3 + 2  # VERBATIM_LIVE_LOST_SECONDS is 3 here
            confirmed += [e["segment"] for _, e in events if e["type"] == "final"]
            saved = client.get(f"/v1/jobs/{started['job_id']}/transcript.json").json()
            assert [plain(s) for s in saved["segments"]] == [plain(s) for s in confirmed]
        finally:
            os.kill(holder, signal.SIGCONT)
        streamer.thread.join()
