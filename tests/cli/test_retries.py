"""How one file rides out a brief outage and how a refusal stays final (pure client logic,
against `httpx.MockTransport`; the same behaviour through a real server is in
test_server_answers.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cli import transcribe
from cli.client import ApiError, Client
from cli.transcribe import Request, transcribe_file

AUDIO = bytes(range(256)) * 40
JOB = {"id": "j1", "status": "queued", "progress": 0.0}
Handler = Callable[[httpx.Request], httpx.Response]


def unavailable() -> httpx.Response:
    """The API's own 503, as when Redis blips."""
    error = {"code": "service_unavailable", "message": "Redis is unavailable."}
    return httpx.Response(503, json={"error": error})


def gateway(status: int) -> httpx.Response:
    """A proxy's page while no API replica answers."""
    return httpx.Response(status, html=f"<html><h1>{status}</h1>nginx</html>")


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transcribe, "POLL_SECONDS", 0.001)
    monkeypatch.setattr(transcribe, "UPLOAD_RETRY_SECONDS", 0.001)


@pytest.fixture
def request_(tmp_path: Path) -> Request:
    source = tmp_path / "talk.mp3"
    source.write_bytes(AUDIO)
    return Request(source, "talk.mp3", {"txt": tmp_path / "talk.txt"})


class Server:
    """Answers from per-route scripts: each call pops the next answer, the last one stays."""

    def __init__(self, scripts: dict[tuple[str, str], list[Callable[[], httpx.Response]]]):
        self.scripts = scripts
        self.uploads: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        if key == ("POST", "/v1/jobs"):
            self.uploads.append(request.read())
        script = self.scripts[key]
        return (script.pop(0) if len(script) > 1 else script[0])()


def run(server: Server, request: Request) -> float:
    with Client("http://verbatim.test", httpx.MockTransport(server)) as client:
        seconds = transcribe_file(client, request, {"task": "transcribe"}, lambda *_: None)
        assert client.cancel_unsettled() == (0, 0)  # the job was settled, nothing to cancel
    return seconds


def job(status: str) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(200, json=JOB | {"status": status})


def text() -> httpx.Response:
    return httpx.Response(200, text="hi")


def transcript() -> httpx.Response:
    return httpx.Response(200, json={"duration": 3.5, "segments": []})


def broken() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


def test_upload_polls_and_downloads_ride_out_502_503_504_and_lost_connections(
    request_: Request,
) -> None:
    server = Server({
        ("POST", "/v1/jobs"): [unavailable, lambda: gateway(502), broken,
                               lambda: httpx.Response(202, json=JOB)],
        ("GET", "/v1/jobs/j1"): [lambda: gateway(504), job("processing"), unavailable,
                                 job("completed")],
        ("GET", "/v1/jobs/j1/transcript.json"): [lambda: gateway(502), transcript],
        ("GET", "/v1/jobs/j1/transcript.txt"): [unavailable, text],
    })  # fmt: skip
    assert run(server, request_) == 3.5
    assert (request_.source.parent / "talk.txt").read_text() == "hi"
    assert len(server.uploads) == 4
    assert all(AUDIO in body for body in server.uploads)  # each from the start of the file


@pytest.mark.parametrize("status", [400, 404, 413, 415, 500])
def test_a_refusal_is_final(request_: Request, status: int) -> None:
    error = {"code": "refused", "message": "No."}
    server = Server({("POST", "/v1/jobs"): [lambda: httpx.Response(status, json={"error": error})]})
    with pytest.raises(ApiError) as raised:
        run(server, request_)
    assert (raised.value.code, raised.value.status) == ("refused", status)
    assert len(server.uploads) == 1


def test_a_job_gone_while_polling_is_final(request_: Request) -> None:
    gone = {"code": "job_not_found", "message": "No job j1."}
    server = Server({
        ("POST", "/v1/jobs"): [lambda: httpx.Response(202, json=JOB)],
        ("GET", "/v1/jobs/j1"): [lambda: httpx.Response(404, json={"error": gone})],
    })  # fmt: skip
    with pytest.raises(ApiError, match="job_not_found"):
        run(server, request_)


def test_an_outage_longer_than_the_grace_fails_the_file(
    request_: Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transcribe, "UNREACHABLE_GRACE_SECONDS", 0.05)
    server = Server({("POST", "/v1/jobs"): [unavailable]})
    with pytest.raises(ApiError) as raised:
        run(server, request_)
    assert (raised.value.code, raised.value.status) == ("service_unavailable", 503)
    assert len(server.uploads) > 1


def test_a_body_that_is_not_json_is_a_bad_response(request_: Request) -> None:
    server = Server({("POST", "/v1/jobs"): [lambda: httpx.Response(202, html="<html>hi</html>")]})
    with pytest.raises(ApiError) as raised:
        run(server, request_)
    assert raised.value.code == "bad_response"
    assert "not the JSON a Verbatim server sends (text/html" in raised.value.message


def test_a_transcript_that_is_not_json_is_a_bad_response(request_: Request) -> None:
    server = Server({
        ("POST", "/v1/jobs"): [lambda: httpx.Response(202, json=JOB)],
        ("GET", "/v1/jobs/j1"): [job("completed")],
        ("GET", "/v1/jobs/j1/transcript.json"): [lambda: httpx.Response(200, text="oops")],
        ("GET", "/v1/jobs/j1/transcript.txt"): [text],
    })  # fmt: skip
    with pytest.raises(ApiError, match="bad_response"):
        run(server, request_)
