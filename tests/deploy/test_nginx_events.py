"""A job's server-sent events through the repo's nginx.conf, to two real replicas."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sse_client import Received, all_events
from support import DATA, Process, submit

from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id

from .conftest import NGINX_CONF, Nginx

EVENTS_LOCATION = re.compile(r"location ~ \^/v1/jobs/\[\^/\]\+/events\$ \{(?P<body>[^}]*)\}")


def test_events_location_is_unbuffered_with_a_long_read_timeout() -> None:
    found = EVENTS_LOCATION.search(NGINX_CONF.read_text())
    assert found, "nginx.conf has no location for /v1/jobs/{id}/events"
    directives = {line.strip().rstrip(";") for line in found["body"].splitlines()}
    assert "proxy_buffering off" in directives
    assert "proxy_pass http://verbatim_api" in directives
    (timeout,) = [d for d in directives if d.startswith("proxy_read_timeout")]
    assert int(timeout.split()[1].rstrip("s")) >= 600


def test_segments_come_through_nginx_as_they_are_decoded(
    nginx: Nginx, worker: Process, long_recording: Path
) -> None:
    with httpx.Client(base_url=nginx.url, timeout=60) as http:
        job = submit(http, long_recording)
        received = all_events(http, job["id"])
        transcript = http.get(f"/v1/jobs/{job['id']}/transcript.json").json()
    segments = [event for event in received if event.name == "segment"]
    assert received[-1].name == "completed"
    # The last 30-s stretch is decoded after the first one's segments came through.
    assert segments[-1].at - segments[0].at > 0.3, "nginx held the events back"
    assert "".join(s.data["text"] for s in segments).strip() == transcript["text"]


@pytest.fixture
def idle_job(redis_url: str, tmp_path: Path) -> Iterator[str]:
    """A job that exists but is never queued: its stream stays idle."""
    store = JobStore.from_url(redis_url)
    job_id = new_job_id()
    # Its upload is a copy: deleting the job removes it.
    upload = tmp_path / "idle.flac"
    upload.write_bytes(DATA.joinpath("jfk.flac").read_bytes())
    store.create(job_id, "idle.flac", JobOptions(), 11.0, upload)
    yield job_id
    store.delete(job_id)
    store.redis.close()


def test_heartbeats_and_deletion_pass_through_nginx(nginx: Nginx, idle_job: str) -> None:
    pings: list[float] = []
    with httpx.Client(base_url=nginx.url, timeout=httpx.Timeout(10)) as http, \
            http.stream("GET", f"/v1/jobs/{idle_job}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        started = time.monotonic()
        lines = response.iter_lines()
        for line in lines:
            if line.startswith(":"):
                pings.append(time.monotonic() - started)
            if len(pings) == 2:
                break
        assert http.delete(f"/v1/jobs/{idle_job}").status_code == 204
        rest = [line for line in lines if line.startswith("event:")]
    assert pings[0] < 5, "a heartbeat was held back"
    assert rest == ["event: deleted"]


def test_a_finished_job_replays_through_nginx(nginx: Nginx, worker: Process) -> None:
    with httpx.Client(base_url=nginx.url, timeout=60) as http:
        job = submit(http, DATA / "jfk.flac")
        live: list[Received] = all_events(http, job["id"])
        replay = all_events(http, job["id"])
    assert [e.id for e in replay] == [e.id for e in live]
    assert replay[-1].name == "completed"
