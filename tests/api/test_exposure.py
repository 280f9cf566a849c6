"""What the API port shows: `/metrics` there or on a port of its own, the documentation pages
and the OpenAPI document on or off, and the security headers of the page and its files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from support import Process, start_api

from api.main import create_app
from shared.config import Settings
from shared.localredis import free_port

PAGE_FILES = ["/", "/static/app.js", "/static/style.css", "/static/favicon.svg"]


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/13", data_dir=tmp_path / "data")


def serve(settings: Settings, **changes: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes)))


@pytest.mark.parametrize(
    ("changes", "docs", "schema"),
    [({}, 200, 200), ({"docs_enabled": False}, 404, 200),
     ({"openapi_enabled": False}, 404, 404),
     ({"docs_enabled": False, "openapi_enabled": False}, 404, 404)],
)
def test_documentation_can_be_turned_off(
    settings: Settings, queue_db: redis.Redis, changes: dict, docs: int, schema: int
) -> None:
    with serve(settings, **changes) as api:
        assert api.get("/docs").status_code == docs
        assert api.get("/redoc").status_code == docs
        assert api.get("/openapi.json").status_code == schema
        if schema == 404:
            assert api.get("/openapi.json").json()["error"]["code"] == "not_found"
        assert api.get("/healthz").status_code == 200  # the API itself is unchanged


@pytest.mark.parametrize("path", PAGE_FILES)
def test_the_page_and_its_files_carry_security_headers(
    settings: Settings, queue_db: redis.Redis, path: str
) -> None:
    with serve(settings) as api:
        response = api.get(path)
    assert response.status_code == 200
    policy = {d.split()[0]: d.split()[1:] for d in
              response.headers["content-security-policy"].split("; ")}
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_api_answers_are_not_sniffed_and_the_docs_keep_their_script(
    settings: Settings, queue_db: redis.Redis
) -> None:
    with serve(settings) as api:
        for response in (api.get("/v1/jobs/" + "0" * 32), api.get("/healthz")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "content-security-policy" not in response.headers
        docs = api.get("/docs")
    assert "cdn.jsdelivr.net" in docs.text  # the page's policy would forbid this script
    assert "content-security-policy" not in docs.headers


@pytest.fixture
def metrics_api(service_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, str]]:
    """An API process serving `/metrics` on a port of its own: (API URL, metrics URL)."""
    port = free_port()
    process, url = start_api(service_env | {"VERBATIM_METRICS_PORT": str(port)},
                             tmp_path / "api.log")
    yield url, f"http://127.0.0.1:{port}/metrics"
    process.stop()


def test_metrics_on_a_port_of_their_own_leave_the_api_port(
    metrics_api: tuple[str, str],
) -> None:
    api_url, metrics_url = metrics_api
    assert httpx.get(f"{api_url}/healthz").status_code == 200
    hidden = httpx.get(f"{api_url}/metrics")
    assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "not_found")
    scrape = httpx.get(metrics_url)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    assert 'verbatim_http_requests_total{method="GET",route="/healthz",status="200"}' \
        in scrape.text
    assert 'route="unmatched",status="404"' in scrape.text  # the refused /metrics, counted
    assert "verbatim_queue_depth" in scrape.text


def test_metrics_stay_on_the_api_port_by_default(api_url: str) -> None:
    scrape = httpx.get(f"{api_url}/metrics")
    assert scrape.status_code == 200
    assert "verbatim_http_requests_total" in scrape.text


def test_several_processes_share_one_metrics_listener(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """`uvicorn --workers 2` in multiprocess mode: the first process takes the port, the other
    says so and serves the API; the one scrape adds up both processes' requests."""
    port = free_port()
    (tmp_path / "prometheus").mkdir()
    env = service_env | {"VERBATIM_METRICS_PORT": str(port),
                         "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    api, url = start_api(env, tmp_path / "api.log", "--workers", "2")
    try:
        with httpx.Client() as http:
            for _ in range(40):  # new connections, spread by the kernel over both processes
                assert httpx.get(f"{url}/v1/jobs/{'0' * 32}").status_code == 404
            scrape = http.get(f"http://127.0.0.1:{port}/metrics").text
        line = 'verbatim_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}'
        assert f"{line} 40.0" in scrape
        assert_one_listener(api)
    finally:
        api.stop()


def assert_one_listener(api: Process) -> None:
    output = api.output()
    assert output.count("metrics on ") == 1, output[-3000:]
    assert output.count("metrics: cannot listen") == 1, output[-3000:]
