"""A job's `metadata` and `retention_seconds`: stored, returned, enforced, and bad values."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import redis
from support import submit, wait_for_job, write_silence


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_silence(tmp_path_factory.mktemp("extras") / "quiet.wav", 1.0)


def test_metadata_round_trips(client: httpx.Client, recording: Path) -> None:
    tags = {"customer": "acme", "priority": 2, "ratio": 0.5, "urgent": True, "note": None,
            "name": "Zoë ✓"}
    created = submit(client, recording, metadata=json.dumps(tags))
    assert created["metadata"] == tags
    job = wait_for_job(client, created["id"])
    assert job["metadata"] == tags
    assert client.get(f"/v1/jobs/{job['id']}").json()["metadata"] == tags


def test_a_job_without_extras_shows_none(client: httpx.Client, recording: Path) -> None:
    job = submit(client, recording)
    assert job["metadata"] is None
    assert job["retention_seconds"] is None
    assert job["webhook_url"] is None


def test_retention_seconds_shortens_how_long_the_job_is_kept(
    client: httpx.Client, redis_client: redis.Redis, recording: Path
) -> None:
    created = submit(client, recording, retention_seconds="3")
    assert created["retention_seconds"] == 3
    job = wait_for_job(client, created["id"])
    assert job["status"] == "completed"
    assert 0 < redis_client.ttl(f"verbatim:job:{job['id']}") <= 3
    assert client.get(f"/v1/jobs/{job['id']}/transcript.txt").status_code == 200
    time.sleep(3.5)
    assert client.get(f"/v1/jobs/{job['id']}").json()["error"]["code"] == "job_not_found"
    kept = wait_for_job(client, submit(client, recording)["id"])  # the server's default
    assert redis_client.ttl(f"verbatim:job:{kept['id']}") > 6 * 24 * 3600


@pytest.mark.parametrize(("field", "value"), [
    ("metadata", "not json"), ("metadata", "[1, 2]"), ("metadata", '"text"'),
    ("metadata", '{"nested": {"a": 1}}'), ("metadata", '{"list": [1]}'),
    ("metadata", json.dumps({f"k{i}": i for i in range(33)})),
    ("metadata", json.dumps({"k": "v" * 513})), ("metadata", json.dumps({"k" * 65: 1})),
    ("metadata", json.dumps({"": 1})),
    ("metadata", json.dumps({f"k{i}": "v" * 300 for i in range(20)})),
    ("retention_seconds", "abc"), ("retention_seconds", "0"), ("retention_seconds", "-5"),
    ("retention_seconds", "1.5"), ("retention_seconds", str(7 * 24 * 3600 + 1)),
])  # fmt: skip
def test_bad_extras_are_refused_naming_the_field(
    client: httpx.Client, recording: Path, field: str, value: str
) -> None:
    with recording.open("rb") as f:
        response = client.post("/v1/jobs", files={"file": (recording.name, f)},
                               data={field: value})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["message"].startswith(field)


def test_bad_extras_in_a_json_body(client: httpx.Client) -> None:
    for extra in ({"metadata": "not an object"}, {"metadata": [1]},
                  {"retention_seconds": "soon"}, {"webhook_url": 5}):
        response = client.post("/v1/jobs", json={"url": "http://127.0.0.1:9/a.flac", **extra})
        assert response.status_code == 422, (extra, response.text)
        assert response.json()["error"]["code"] == "validation_error"
