"""The logs: JSON lines; a request's id on its request line and on its job's worker lines;
never a word of a transcript."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from support import DATA, Process, wait_for_job

JFK = DATA / "jfk.flac"


def test_a_request_id_follows_its_job_into_the_worker(
    client: httpx.Client, api_process: tuple[Process, str], worker: Process
) -> None:
    request_id = f"logs-test-{uuid.uuid4().hex[:8]}"
    with JFK.open("rb") as f:
        response = client.post(
            "/v1/jobs", files={"file": (JFK.name, f)}, headers={"X-Request-ID": request_id}
        )
    assert response.status_code == 202
    assert response.headers["x-request-id"] == request_id
    job_id = response.json()["id"]
    assert wait_for_job(client, job_id)["status"] == "completed"
    text = client.get(f"/v1/jobs/{job_id}/transcript.txt").text

    api_records, worker_records = api_process[0].records(), worker.records()  # all JSON
    [line] = [r for r in api_records if r["logger"] == "api.access"
              and r.get("request_id") == request_id]
    assert (line["method"], line["route"], line["path"], line["status"]) == (
        "POST", "/v1/jobs", "/v1/jobs", 202)
    assert line["job_id"] == job_id
    assert line["duration_ms"] > 0
    assert {"ts", "level", "message"} <= line.keys()
    [queued] = [r for r in api_records if r.get("event") == "queued"
                and r.get("job_id") == job_id]
    assert queued["request_id"] == request_id

    transitions = [r for r in worker_records if r.get("job_id") == job_id and "event" in r]
    assert [r["event"] for r in transitions] == ["processing", "completed"]
    assert all(r["request_id"] == request_id for r in transitions)
    completed = transitions[-1]
    assert completed["audio_seconds"] == pytest.approx(11.0, abs=0.1)
    assert completed["rtf"] == pytest.approx(completed["duration_seconds"] / 11.0, rel=0.05)

    # A status poll names its job too, and shares nothing with the submission but the job.
    polls = [r for r in api_records if r.get("route") == "/v1/jobs/{job_id}"
             and r.get("job_id") == job_id]
    assert polls
    assert all(r["request_id"] != request_id for r in polls)

    words = {w for w in re.findall(r"[a-z]+", text.lower()) if len(w) >= 5}
    assert {"fellow", "americans", "country"} <= words, text
    logs = (api_process[0].output() + worker.output()).lower()
    assert text.strip().lower() not in logs
    assert not [w for w in words if w in logs]


def test_request_ids_are_generated_when_missing_or_unusable(client: httpx.Client) -> None:
    generated = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    for unusable in ("has spaces", "x" * 200, "semi;colon"):
        echoed = client.get("/healthz", headers={"X-Request-ID": unusable}).headers
        assert re.fullmatch(r"[0-9a-f]{32}", echoed["x-request-id"]), unusable
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers[
        "x-request-id"] == "abc-123"
