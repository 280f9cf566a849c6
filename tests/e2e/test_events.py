"""`GET /v1/jobs/{id}/events` on the long recording, with the real worker and model."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sse_client import Received, all_events, events
from support import submit, wait_for_job

# The first segment must come this much (of the time the worker spent on the job, from its
# `processing` status to `completed`: time in the queue says nothing of it) before the end, or
# it was not sent as it was decoded. The first 30 s window holds 84 % of the 35.8 s recording,
# so its segments arrive about 16 % of the worker's time before the end (measured 19 % on a
# quiet machine).
EARLY_FRACTION = 0.1


def segments(received: list[Received]) -> list[Received]:
    return [event for event in received if event.name == "segment"]


def ids(received: list[Received]) -> list[str]:
    return [event.id for event in received]


@pytest.fixture(scope="module")
def followed(client: httpx.Client, long_recording: Path) -> tuple[dict, list[Received], float]:
    """The long recording submitted and followed live: its job, its events, when submitted."""
    submitted = time.time()
    job = submit(client, long_recording)
    return job, all_events(client, job["id"]), submitted


def test_segments_arrive_before_completion(
    followed: tuple[dict, list[Received], float], client: httpx.Client
) -> None:
    job, received, submitted = followed
    names = [event.name for event in received]
    assert names[0] == "status"
    assert received[0].data == {"status": "queued"}
    assert names[-1] == "completed", names
    assert "progress" in names
    began = next(event for event in received
                 if event.name == "status" and event.data["status"] == "processing")
    first = segments(received)[0]
    completed = received[-1]
    assert completed.at - first.at > EARLY_FRACTION * (completed.at - began.at), (
        began.at - submitted, first.at - submitted, completed.at - submitted)
    assert wait_for_job(client, job["id"])["status"] == "completed"


def test_segments_in_order_make_the_transcript(
    followed: tuple[dict, list[Received], float], client: httpx.Client
) -> None:
    job, received, _ = followed
    found = segments(received)
    assert [s.data["id"] for s in found] == list(range(len(found)))
    starts = [s.data["start"] for s in found]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)
    assert all(s.data["end"] >= s.data["start"] for s in found)
    transcript = client.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    assert "".join(s.data["text"] for s in found).strip() == transcript["text"]
    assert [s.data["text"] for s in found] == [s["text"] for s in transcript["segments"]]


def test_every_event_has_an_increasing_id(followed: tuple[dict, list[Received], float]) -> None:
    order = [tuple(map(int, event.id.split("-"))) for event in followed[1]]
    assert order == sorted(order)
    assert len(set(order)) == len(order)


def test_completed_links_the_transcripts(
    followed: tuple[dict, list[Received], float], client: httpx.Client
) -> None:
    job, received, _ = followed
    links = received[-1].data["transcripts"]
    assert set(links) == {"json", "txt", "srt", "vtt", "tsv", "ass", "rttm"}
    srt = client.get(links["srt"])
    assert srt.status_code == 200
    assert "-->" in srt.text
    assert received[-1].data["duration"] == pytest.approx(job["audio_duration"], abs=0.5)


def test_progress_never_goes_back(followed: tuple[dict, list[Received], float]) -> None:
    values = [e.data["progress"] for e in followed[1] if e.name == "progress"]
    assert values == sorted(values)
    assert 0 < values[-1] <= 1


def test_finished_job_replays_its_whole_history(
    followed: tuple[dict, list[Received], float], client: httpx.Client
) -> None:
    job, received, _ = followed
    replay = all_events(client, job["id"])
    assert [(e.id, e.name, e.data) for e in replay] == [(e.id, e.name, e.data) for e in received]


def test_reconnect_with_last_event_id_misses_nothing(
    client: httpx.Client, long_recording: Path
) -> None:
    job = submit(client, long_recording)
    before: list[Received] = []
    for event in events(client, job["id"]):
        before.append(event)
        if len(segments(before)) == 2:
            break  # the connection drops mid-job
    job_now = client.get(f"/v1/jobs/{job['id']}").json()
    assert job_now["status"] == "processing", "the test must reconnect while the job runs"
    after = all_events(client, job["id"], last_event_id=before[-1].id)
    assert after[-1].name == "completed"
    full = all_events(client, job["id"])
    assert ids(before) + ids(after) == ids(full)


def test_deleting_a_job_ends_its_stream(client: httpx.Client, long_recording: Path) -> None:
    job = submit(client, long_recording)
    received: list[Received] = []
    for event in events(client, job["id"]):
        received.append(event)
        if event.name == "segment" and len(segments(received)) == 1:
            assert client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert received[-1].name == "deleted"
    assert received[-1].data["error"]["code"] == "job_not_found"
    gone = client.get(f"/v1/jobs/{job['id']}/events")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "job_not_found"


@pytest.mark.parametrize("value", ["abc", "1-2-3", "-1-0", "1.5-0", "0-0; drop", "\uff11-0"])
def test_bad_last_event_id_is_refused(
    followed: tuple[dict, list[Received], float], client: httpx.Client, value: str
) -> None:
    response = client.get(f"/v1/jobs/{followed[0]['id']}/events",
                          headers={"Last-Event-ID": value.encode()})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "Last-Event-ID" in error["message"]


def test_events_of_an_unknown_job_are_404(client: httpx.Client) -> None:
    response = client.get(f"/v1/jobs/{'0' * 32}/events")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"
