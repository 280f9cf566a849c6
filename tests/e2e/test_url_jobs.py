"""Jobs from a media URL: fetched by the I/O worker from a real server on loopback, probed,
transcribed; and every refusal. Only loopback is ever contacted."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest
from receivers import Receiver, media_server, webhook_receiver
from standardwebhooks.webhooks import Webhook
from support import DATA, Process, spawn, start_api, wait_for_job, wait_until

from cli.serve import io_worker_command
from shared.config import Settings
from shared.localredis import free_port
from shared.state.webhooks import signing_secret

SHORT = DATA / "LJ001-0001.flac"
SMALL_LIMIT = 200_000


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    text = tmp_path_factory.mktemp("media") / "notes.txt"
    text.write_text("not audio at all\n" * 100)
    with media_server({"lj.flac": SHORT, "notes.txt": text}) as base:
        yield base


@pytest.fixture(scope="module")
def small_limits(
    service_env: dict[str, str], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An API and I/O worker of their own (Redis database 1) with a 200 kB upload limit."""
    logs = tmp_path_factory.mktemp("small-limits")
    env = service_env | {"VERBATIM_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/1",
                         "VERBATIM_MAX_UPLOAD_BYTES": str(SMALL_LIMIT),
                         "VERBATIM_IO_METRICS_PORT": str(free_port())}
    io = spawn(io_worker_command(2), env, logs / "io.log")
    wait_until(lambda: " ready." in io.output(), "I/O worker start", io)
    api, url = start_api(env, logs / "api.log")
    yield url
    api.stop()
    io.stop()


@pytest.fixture(scope="module")
def nothing_allowed(
    service_env: dict[str, str], redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An API with an empty `VERBATIM_FETCH_ALLOW` (Redis database 2)."""
    env = service_env | {"VERBATIM_REDIS_URL": redis_url.rsplit("/", 1)[0] + "/2",
                         "VERBATIM_FETCH_ALLOW": ""}
    api, url = start_api(env, tmp_path_factory.mktemp("nothing-allowed") / "api.log")
    yield url
    api.stop()


def transcript_text(client: httpx.Client, job_id: str) -> str:
    return client.get(f"/v1/jobs/{job_id}/transcript.txt").text.lower()


def test_a_url_in_the_form_is_fetched_and_transcribed(
    client: httpx.Client, io_worker: Process, media: str
) -> None:
    response = client.post("/v1/jobs", data={"url": f"{media}/lj.flac", "language": "en"})
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "fetching"
    assert created["source_url"] == f"{media}/lj.flac"
    assert created["filename"] == "lj.flac"
    job = wait_for_job(client, created["id"])
    assert job["status"] == "completed", job
    assert job["audio_duration"] == pytest.approx(9.65, abs=0.2)
    assert "printing" in transcript_text(client, job["id"])


def test_a_json_body_with_options_metadata_and_a_redirect_chain(
    client: httpx.Client, io_worker: Process, media: str
) -> None:
    body = {"url": f"{media}/redirect/4/lj.flac", "word_timestamps": True,
            "metadata": {"source": "crm", "id": 7}, "retention_seconds": 600}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "completed", job
    assert job["metadata"] == {"source": "crm", "id": 7}
    assert job["options"]["word_timestamps"] is True
    assert "printing" in transcript_text(client, job["id"])


@pytest.mark.parametrize(("path", "code", "words"), [
    ("/missing.flac", "fetch_failed", "HTTP 404"),
    ("/redirect/6/lj.flac", "fetch_failed", "more than 5"),
    ("/notes.txt", "unsupported_media", ""),
])  # fmt: skip
def test_fetch_failures_are_the_jobs_error(
    client: httpx.Client, io_worker: Process, media: str, path: str, code: str, words: str
) -> None:
    created = client.post("/v1/jobs", data={"url": media + path}).json()
    job = wait_for_job(client, created["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == code, job
    assert words in job["error"]["message"]


def test_a_failed_fetch_announces_job_failed(
    client: httpx.Client, io_worker: Process, media: str, redis_client: object, redis_url: str
) -> None:
    with webhook_receiver(Receiver()) as receiver:
        created = client.post("/v1/jobs", data={"url": f"{media}/gone.flac",
                                                "webhook_url": receiver.url}).json()
        (delivery,) = receiver.wait_for(1)
    secret = signing_secret(redis_client, Settings(redis_url=redis_url))  # type: ignore[arg-type]
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.failed"
    assert event["data"]["id"] == created["id"]
    assert event["data"]["error"]["code"] == "fetch_failed"


def test_a_redirect_to_ipv6_loopback_is_refused_when_only_127_0_0_1_is_allowed(
    client: httpx.Client, io_worker: Process, media: str
) -> None:
    with media_server({"lj.flac": SHORT}, host="::1") as ipv6:
        created = client.post("/v1/jobs", data={"url": f"{media}/to?location={ipv6}/lj.flac"})
        job = wait_for_job(client, created.json()["id"])
        assert httpx.get(f"{ipv6}/lj.flac").status_code == 200  # it was there to be fetched
    assert job["status"] == "failed"
    assert job["error"]["code"] == "url_forbidden", job


def test_an_oversized_download_stops_at_the_limit(small_limits: str, media: str) -> None:
    with httpx.Client(base_url=small_limits, timeout=30) as http:
        created = http.post("/v1/jobs", data={"url": f"{media}/endless"}).json()
        job = wait_for_job(http, created["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "payload_too_large"
    assert str(SMALL_LIMIT) in job["error"]["message"]


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/lj.flac", "http://[::1]:{port}/lj.flac",
    "http://0.0.0.0:{port}/lj.flac", "http://localhost:{port}/lj.flac",
    "http://127.1:{port}/lj.flac", "http://2130706433:{port}/lj.flac",
    "http://0x7f000001:{port}/lj.flac", "http://[::ffff:127.0.0.1]:{port}/lj.flac",
    "http://LocalHost.:{port}/lj.flac", "http://127.0.0.2:{port}/lj.flac",
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_with_nothing_allowed_every_spelling_of_loopback_is_url_forbidden(
    nothing_allowed: str, media: str, spelling: str
) -> None:
    url = spelling.format(port=media.rsplit(":", 1)[1])
    for response in (httpx.post(f"{nothing_allowed}/v1/jobs", data={"url": url}),
                     httpx.post(f"{nothing_allowed}/v1/jobs", json={"url": url})):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "url_forbidden"


def test_a_refusal_says_the_url_is_refused_never_what_its_host_resolves_to(
    nothing_allowed: str, media: str
) -> None:
    """Names that resolve to loopback here (the machine's own name, by /etc/hosts) and
    spellings of 127.0.0.1: the answer never names the address they come to."""
    port = media.rsplit(":", 1)[1]
    name = socket.gethostname()
    assert ipaddress.ip_address(socket.gethostbyname(name)).is_loopback  # Debian's /etc/hosts
    for host in (name, "2130706433", "0x7f000001", "127.1"):
        response = httpx.post(f"{nothing_allowed}/v1/jobs",
                              json={"url": f"http://{host}:{port}/lj.flac"})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "url_forbidden"
        assert "refused" in error["message"]
        assert "127.0" not in error["message"], error
        assert "loopback" not in error["message"], error


@pytest.mark.parametrize(("body", "code"), [
    ({"url": "gopher://127.0.0.1/x"}, "url_forbidden"),
    ({"url": "relative/path.flac"}, "invalid_url"),
    ({"url": 42}, "validation_error"),
    ({"url": ""}, "validation_error"),
    ({"language": "en"}, "validation_error"),
    ({"url": "http://127.0.0.1:9/a.flac", "beam_size": 0}, "validation_error"),
    ({"url": "http://127.0.0.1:9/a.flac", "file": "x"}, "validation_error"),
    ([1, 2], "validation_error"),
])  # fmt: skip
def test_bad_url_requests(client: httpx.Client, body: object, code: str) -> None:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_a_form_with_both_file_and_url_is_refused(client: httpx.Client, media: str) -> None:
    with SHORT.open("rb") as f:
        response = client.post("/v1/jobs", files={"file": (SHORT.name, f)},
                               data={"url": f"{media}/lj.flac"})
    assert response.status_code == 422
    assert "either `file` or `url`" in response.json()["error"]["message"]


def test_a_malformed_json_body(client: httpx.Client) -> None:
    response = client.post("/v1/jobs", content=b"{not json",
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
