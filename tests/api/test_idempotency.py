"""`Idempotency-Key` on `POST /v1/jobs` and `/v1/audio/*`, against the real API and Redis."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from support import write_silence

REPLAYED = "Idempotent-Replayed"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_silence(tmp_path_factory.mktemp("idem") / "quiet.wav", 1.5)


def job_count(redis_client: redis.Redis) -> int:
    return sum(1 for _ in redis_client.scan_iter("verbatim:job:*", count=1000))


def post(http: httpx.Client, path: Path, key: str | None, **fields: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    with path.open("rb") as f:
        return http.post("/v1/jobs", files={"file": (path.name, f)}, data=fields,
                         headers=headers)


def test_a_repeat_returns_the_first_job_and_creates_nothing(
    client: httpx.Client, redis_client: redis.Redis, recording: Path
) -> None:
    key = str(uuid.uuid4())
    first = post(client, recording, key, language="en")
    assert first.status_code == 202, first.text
    assert REPLAYED not in first.headers
    before = job_count(redis_client)
    again = post(client, recording, key, language="en")
    assert again.status_code == 202
    assert again.headers[REPLAYED] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == f"/v1/jobs/{first.json()['id']}"
    assert job_count(redis_client) == before
    other = post(client, recording, str(uuid.uuid4()), language="en")  # another key: a new job
    assert other.json()["id"] != first.json()["id"]


def test_the_same_key_with_another_file_or_options_is_a_conflict(
    client: httpx.Client, recording: Path, tmp_path: Path
) -> None:
    key = str(uuid.uuid4())
    assert post(client, recording, key).status_code == 202
    longer = write_silence(tmp_path / "quiet.wav", 2.0)  # same name, other bytes
    for response in (post(client, longer, key), post(client, recording, key, language="fr"),
                     post(client, recording, key, metadata='{"a": 1}')):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "idempotency_conflict"


def test_ten_identical_requests_racing_make_one_job(
    client: httpx.Client, redis_client: redis.Redis, recording: Path, api_url: str
) -> None:
    key = str(uuid.uuid4())
    before = job_count(redis_client)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=api_url, timeout=60) as http:
            return post(http, recording, key)

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(one, range(10)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(REPLAYED not in r.headers for r in responses) == 1
    assert job_count(redis_client) == before + 1


def test_url_jobs_are_idempotent_too(client: httpx.Client) -> None:
    key = str(uuid.uuid4())
    body = {"url": "http://127.0.0.1:9/nothing-listens.flac"}
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
    again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers[REPLAYED] == "true"
    other = client.post("/v1/jobs", json={**body, "language": "de"},
                        headers={"Idempotency-Key": key})
    assert other.json()["error"]["code"] == "idempotency_conflict"


def test_openai_route_replays_the_transcription(client: httpx.Client, recording: Path) -> None:
    key = str(uuid.uuid4())
    answers = []
    for _ in range(2):
        with recording.open("rb") as f:
            answers.append(client.post(
                "/v1/audio/transcriptions", files={"file": (recording.name, f)},
                data={"model": "whisper-1"}, headers={"Idempotency-Key": key}, timeout=120))
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].headers["x-verbatim-job-id"] == answers[1].headers["x-verbatim-job-id"]
    assert answers[1].headers[REPLAYED] == "true"
    with recording.open("rb") as f:
        conflict = client.post("/v1/audio/transcriptions", files={"file": (recording.name, f)},
                               data={"model": "whisper-1", "language": "fr"},
                               headers={"Idempotency-Key": key})
    assert conflict.status_code == 400  # OpenAI's status for a bad request
    assert conflict.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize("key", [b"", b"a" * 256, b"has space", b"caf\xc3\xa9", b"tab\there"])
def test_bad_keys_are_refused(client: httpx.Client, recording: Path, key: bytes) -> None:
    with recording.open("rb") as f:
        response = client.post("/v1/jobs", files={"file": (recording.name, f)},
                               headers=[(b"Idempotency-Key", key)])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
