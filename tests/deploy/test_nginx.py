"""The repo's nginx.conf, run by nginx in front of two real API replicas and a real worker."""

from __future__ import annotations

import http.client
import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support import DATA, Process, submit, wait_for_job, write_silence

from shared.localredis import free_port

from .conftest import SMALL_LIMIT, Nginx, Recorder, start_nginx
from .files import nginx_size

MiB = 1024 * 1024


def request_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def raw_request(
    url: str, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """Send only the request line and headers (no body, the path exactly as given) and read
    the answer: what nginx decides before a body arrives, unaltered by an HTTP client."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def error_code(body: bytes) -> str:
    return str(json.loads(body)["error"]["code"])


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower()))


def test_requests_are_spread_over_both_replicas(nginx: Nginx, replicas: list[str]) -> None:
    ids = [request_id("spread") for _ in range(10)]
    with httpx.Client(base_url=nginx.url, timeout=10) as http:
        for rid in ids:
            assert http.get("/healthz", headers={"X-Request-ID": rid}).status_code == 200
    served = [nginx.logged(rid) for rid in ids]
    assert {entry["upstream_status"] for entry in served} == {"200"}
    assert {entry["upstream_addr"] for entry in served} == set(replicas)


def test_api_errors_pass_through_unchanged(nginx: Nginx) -> None:
    """nginx's own 404 body is only for what it refuses itself (/metrics)."""
    response = httpx.get(f"{nginx.url}/v1/jobs/{uuid.uuid4().hex}", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_upload_through_nginx_is_transcribed(nginx: Nginx, worker: Process) -> None:
    """jfk.flac (1.1 MB) up through nginx to a replica, the worker transcribes it, and the job
    is polled and its transcript downloaded through nginx, from either replica."""
    with httpx.Client(base_url=nginx.url, timeout=60) as http:
        job = submit(http, DATA / "jfk.flac")
        done = wait_for_job(http, job["id"])
        assert done["status"] == "completed", done
        transcript = http.get(f"/v1/jobs/{job['id']}/transcript.txt")
    assert transcript.status_code == 200
    assert "ask not what your country can do for you" in words(transcript.text)


def test_upload_over_the_limit_is_refused_by_nginx(small_limit_nginx: Nginx) -> None:
    """Refused on its Content-Length alone, before a byte of the body is sent, and answered
    by nginx itself: no replica took part (empty upstream address in nginx's log)."""
    rid = request_id("too-large")
    status, headers, body = raw_request(small_limit_nginx.url, "POST", "/v1/jobs", {
        "Content-Type": "multipart/form-data; boundary=x",
        "Content-Length": str(nginx_size(SMALL_LIMIT) + MiB),
        "X-Request-ID": rid,
    })
    assert status == 413
    assert error_code(body) == "payload_too_large"
    assert headers["x-request-id"] == rid
    entry = small_limit_nginx.logged(rid)
    assert (entry["status"], entry["upstream_addr"]) == (413, "")


def test_upload_under_the_limit_passes_the_smaller_nginx(
    small_limit_nginx: Nginx, tmp_path: Path
) -> None:
    audio = write_silence(tmp_path / "short.wav", seconds=2)
    with httpx.Client(base_url=small_limit_nginx.url, timeout=30) as http:
        job = submit(http, audio)
        assert http.delete(f"/v1/jobs/{job['id']}").status_code == 204


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "/%6Detrics", "//metrics"])
def test_metrics_are_not_served_through_nginx(nginx: Nginx, path: str) -> None:
    rid = request_id("metrics")
    status, _, body = raw_request(nginx.url, "GET", path, {"X-Request-ID": rid})
    assert status in (403, 404)
    assert error_code(body) == "not_found"
    assert nginx.logged(rid)["upstream_addr"] == ""


def test_metrics_are_served_by_each_replica(replicas: list[str]) -> None:
    """What Prometheus scrapes, directly on each replica."""
    for address in replicas:
        response = httpx.get(f"http://{address}/metrics", timeout=10)
        if response.status_code == 404:
            pytest.skip("the API serves no /metrics yet: only the nginx side is checked")
        assert response.status_code == 200
        assert "# TYPE" in response.text


def test_client_request_id_reaches_the_replica(nginx: Nginx, replicas: list[str]) -> None:
    rid = request_id("client")
    response = httpx.get(f"{nginx.url}/healthz", headers={"X-Request-ID": rid}, timeout=10)
    assert response.headers.get_list("x-request-id") == [rid]
    entry = nginx.logged(rid)
    assert entry["request_id"] == rid
    probe = request_id("probe")
    direct = httpx.get(f"http://{replicas[0]}/healthz", headers={"X-Request-ID": probe})
    if direct.headers.get("x-request-id") != probe:
        pytest.skip("the API does not echo X-Request-ID yet; nginx's forwarding of it is "
                    "checked by test_nginx_forwards_request_id_and_client_address")
    # The replica echoed the id that nginx forwarded to it.
    assert entry["upstream_request_id"] == rid


def test_nginx_makes_a_request_id_when_the_client_sends_none(nginx: Nginx) -> None:
    response = httpx.get(f"{nginx.url}/healthz", timeout=10)
    [generated] = response.headers.get_list("x-request-id")
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert nginx.logged(generated)["status"] == 200


def test_nginx_forwards_request_id_and_client_address(
    recording_nginx: tuple[Nginx, Recorder],
) -> None:
    proxy, recorder = recording_nginx
    response = httpx.get(f"{proxy.url}/v1/jobs/abc", timeout=10, headers={
        "X-Request-ID": "from-the-client",
        "X-Forwarded-For": "198.51.100.7",  # a client's claim, not passed on
    })
    assert response.status_code == 200
    seen = recorder.requests[-1].headers
    assert seen["x-request-id"] == "from-the-client"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["host"] == urlsplit(proxy.url).netloc
    assert response.headers.get_list("x-request-id") == ["from-the-client"]

    # None, or one the API would not accept either: nginx sends its own instead.
    for headers in ({}, {"X-Request-ID": "no spaces allowed"}, {"X-Request-ID": "x" * 129}):
        response = httpx.get(f"{proxy.url}/healthz", headers=headers, timeout=10)
        generated = recorder.requests[-1].headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        assert response.headers.get_list("x-request-id") == [generated]


def test_uploads_stream_through_nginx_unbuffered(recording_nginx: tuple[Nginx, Recorder]) -> None:
    """The upstream gets the first part of a body while the client still holds the rest back;
    with request buffering on, nginx would wait for the whole body and this would time out."""
    proxy, recorder = recording_nginx
    part = b"\0" * (256 * 1024)
    arrived_early: list[bool] = []

    def body() -> object:
        yield part
        arrived_early.append(recorder.body_started.wait(timeout=10))
        yield part

    response = httpx.post(f"{proxy.url}/v1/jobs", content=body(), timeout=30,  # type: ignore[arg-type]
                          headers={"Content-Length": str(2 * len(part))})
    assert response.status_code == 200
    assert arrived_early == [True]
    assert recorder.requests[-1].body_length == 2 * len(part)


def test_no_replica_answering_is_a_503_in_the_api_shape(
    nginx_binary: str, tmp_path: Path
) -> None:
    proxy = start_nginx(nginx_binary, tmp_path, [f"127.0.0.1:{free_port()}"])
    try:
        response = httpx.get(f"{proxy.url}/v1/jobs/abc", timeout=10)
    finally:
        proxy.process.stop()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
