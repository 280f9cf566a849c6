"""Control characters in an upload's filename: cleaned when stored, never in a header, so every
transcript download answers; and a response uvicorn refuses to send is logged and counted as
what the client got. Real uvicorn processes (its header check is where the bug lived), the
session's Redis and worker."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from support import DATA, ROOT, Process, answers_ok, spawn, wait_for_job, wait_until

from shared.localredis import free_port
from shared.schemas import JobOptions, Segment, Transcript
from shared.state.jobs import JobStore, new_job_id

FORMATS = ("json", "txt", "srt", "vtt", "tsv")
# NUL, BEL, TAB, LF, ESC, DEL, NEL and CSI (C1, as UTF-8), LINE SEPARATOR.
DIRTY = b"a\x00b\x07c\td\ne\x1bf\x7fg\xc2\x85h\xc2\x9bi\xe2\x80\xa8.flac"


def upload(http: httpx.Client, filename: bytes, content: bytes) -> httpx.Response:
    """A multipart upload written by hand: clients' encoders would escape the name."""
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"'
    body = head + b"\r\n\r\n" + content + b"\r\n--b--\r\n"
    return http.post("/v1/jobs", content=body,
                     headers={"content-type": "multipart/form-data; boundary=b"})


def assert_every_download_answers(http: httpx.Client, job_id: str, stem: str) -> None:
    for fmt in FORMATS:
        response = http.get(f"/v1/jobs/{job_id}/transcript.{fmt}")
        assert response.status_code == 200, (fmt, response.text)
        disposition = response.headers["content-disposition"]
        assert disposition.startswith(f'attachment; filename="{stem}.{fmt}"'), disposition


def test_control_characters_are_removed_from_the_stored_filename(client: httpx.Client) -> None:
    response = upload(client, DIRTY, (DATA / "jfk.flac").read_bytes())
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["filename"] == "abcdefghi.flac"
    assert wait_for_job(client, job["id"])["status"] == "completed"
    assert_every_download_answers(client, job["id"], "abcdefghi")
    assert "ask not" in client.get(f"/v1/jobs/{job['id']}/transcript.txt").text


def test_a_job_stored_with_control_characters_still_downloads(
    api_url: str, redis_client: redis.Redis
) -> None:
    """A record written before names were cleaned keeps its name; the header is cleaned."""
    store, job_id = JobStore(redis_client), new_job_id()
    store.create(job_id, "old\x00na\x07me\x1b.mp3", JobOptions(), 1.0, Path("/nonexistent"))
    segment = Segment(id=0, start=0.0, end=1.0, text=" Hello there.")
    store.complete(job_id, Transcript(language="en", duration=1.0, text="Hello there.",
                                      segments=[segment]), ttl=60)
    with httpx.Client(base_url=api_url, timeout=10) as http:
        assert_every_download_answers(http, job_id, "oldname")
        assert http.get(f"/v1/jobs/{job_id}/transcript.txt").text.strip() == "Hello there."


@pytest.fixture
def refusing_api(service_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Process, str]]:
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "refused_header_app:app", "--app-dir",
            str(ROOT / "tests" / "api"), "--host", "127.0.0.1", "--port", str(port)]
    process = spawn(args, service_env, tmp_path / "api.log")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers_ok(f"{url}/healthz"), "API start", process)
    yield process, url
    process.stop()


def test_a_response_the_server_refuses_is_not_logged_as_sent(
    refusing_api: tuple[Process, str],
) -> None:
    process, url = refusing_api
    with pytest.raises(httpx.RemoteProtocolError):  # the connection closes with no answer
        httpx.get(f"{url}/refused", headers={"X-Request-ID": "refused-1"}, timeout=10)
    [line] = [r for r in process.records()
              if r["logger"] == "api.access" and r.get("request_id") == "refused-1"]
    assert (line["status"], line["level"]) == (500, "ERROR")
    assert "Invalid HTTP header value" in line["error"]
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert 'verbatim_http_requests_total{method="GET",route="/refused",status="500"} 1.0' \
        in metrics
    assert 'route="/refused",status="200"' not in metrics
