"""Live transcription over `WS /v1/live`, with the real API, live worker, model and Redis."""

from __future__ import annotations

import itertools
import json

import httpx
import jiwer
import srt
from live_client import Streamer, events_until_end, open_session, pcm16, ws_url
from support import DATA, Process, wait_for_job

REFERENCES = {item["file"]: item["reference"]
              for item in json.loads((DATA / "manifest.json").read_text())}


def words(text: str) -> list[str]:
    return jiwer.RemovePunctuation()(text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis))))


def finals(events: list[tuple[float, dict]]) -> list[tuple[float, dict]]:
    return [(at, event["segment"]) for at, event in events if event["type"] == "final"]


# Two recordings, one after the other: 21 s of speech, long enough for captions to settle
# while it is still being sent on a busy 2-core machine (where one decode takes seconds).
SPEECH = ("jfk.flac", "1089-134686-0000.flac")


def test_a_recording_streamed_at_real_time_is_captioned_as_it_is_spoken(
    api_url: str, live_worker: Process, client: httpx.Client
) -> None:
    reference = " ".join(REFERENCES[name] for name in SPEECH)
    with open_session(ws_url(api_url), word_timestamps=True) as (ws, started):
        assert started["type"] == "started", started
        streamer = Streamer(ws, b"".join(pcm16(DATA / name) for name in SPEECH))
        events = events_until_end(ws)
    assert events[-1][1]["type"] == "done", events[-1]
    segments = finals(events)
    # Captions arrive while the speaker still speaks, not only once the recording has ended.
    assert streamer.finished_at is not None
    sent = streamer.finished_at
    assert any(at < sent for at, _ in segments), [(round(at - sent, 1), e) for at, e in events]
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
