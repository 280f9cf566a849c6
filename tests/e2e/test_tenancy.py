"""API keys end to end: two auth-required API processes on the session's Redis and worker.

Two keys never see each other's jobs through any route; a revoked key is refused at once on the
other replica; rate and active-job limits answer 429 with `Retry-After` and hold across both
replicas; the OpenAI routes answer in OpenAI's shape; no token is stored or logged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis
from support import (
    DATA,
    Process,
    keyed_client,
    make_key,
    revoke_key,
    submit,
    wait_for_job,
    write_silence,
)

from shared.output.formatters import FORMATS

JFK = DATA / "jfk.flac"
MISSING = "0" * 32
TOKENS: list[str] = []  # every token made here, looked for in Redis and the logs at the end


def new_key(redis_url: str, **limits: float) -> tuple[str, str]:
    key_id, token = make_key(redis_url, "tenancy", **limits)
    TOKENS.append(token)
    return key_id, token


@pytest.fixture(scope="module")
def silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second of silence: a job that the worker finishes at once."""
    return write_silence(tmp_path_factory.mktemp("audio") / "quiet.wav", 1.0)


@pytest.fixture(scope="module")
def api(auth_api: tuple[Process, str]) -> str:
    return auth_api[1]


@pytest.fixture(scope="module")
def replica(auth_api_2: tuple[Process, str]) -> str:
    return auth_api_2[1]


@pytest.fixture(scope="module")
def alice(api: str, redis_url: str) -> Iterator[httpx.Client]:
    with keyed_client(api, new_key(redis_url)[1]) as http:
        yield http


@pytest.fixture(scope="module")
def bob(api: str, redis_url: str) -> Iterator[httpx.Client]:
    with keyed_client(api, new_key(redis_url)[1]) as http:
        yield http


@pytest.fixture(scope="module")
def alices_job(alice: httpx.Client) -> dict:
    job = submit(alice, JFK)
    return wait_for_job(alice, job["id"])


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "job_not_found"


def assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_another_keys_job_is_answered_as_one_that_does_not_exist(
    alices_job: dict, alice: httpx.Client, bob: httpx.Client
) -> None:
    job_id = alices_job["id"]
    assert alices_job["status"] == "completed"
    paths = ["", "/transcript", *(f"/transcript.{fmt}" for fmt in FORMATS)]
    for path in paths:
        assert alice.get(f"/v1/jobs/{job_id}{path}").status_code == 200
        theirs, missing = bob.get(f"/v1/jobs/{job_id}{path}"), bob.get(f"/v1/jobs/{MISSING}{path}")
        assert_not_found(theirs)
        assert theirs.json()["error"]["message"].replace(job_id, MISSING) == \
            missing.json()["error"]["message"]
    assert_not_found(bob.delete(f"/v1/jobs/{job_id}"))
    assert alice.get(f"/v1/jobs/{job_id}").json()["status"] == "completed"  # not deleted
    assert job_id in [job["id"] for job in alice.get("/v1/jobs").json()["jobs"]]
    assert job_id not in [job["id"] for job in bob.get("/v1/jobs").json()["jobs"]]


def test_openai_routes_make_jobs_only_their_key_sees(
    api: str, alice: httpx.Client, bob: httpx.Client
) -> None:
    token = bob.headers["authorization"].removeprefix("Bearer ")
    with openai.OpenAI(base_url=f"{api}/v1", api_key=token, max_retries=0) as sdk:
        with JFK.open("rb") as f:
            raw = sdk.audio.transcriptions.with_raw_response.create(model="whisper-1", file=f)
    assert "ask not what your country" in raw.parse().text.lower()
    job_id = raw.headers["x-verbatim-job-id"]
    assert bob.get(f"/v1/jobs/{job_id}").status_code == 200
    assert_not_found(alice.get(f"/v1/jobs/{job_id}"))
    assert_not_found(alice.delete(f"/v1/jobs/{job_id}"))
    assert job_id not in [job["id"] for job in alice.get("/v1/jobs").json()["jobs"]]
    assert job_id in [job["id"] for job in bob.get("/v1/jobs").json()["jobs"]]


def test_every_v1_route_asks_for_a_key_and_the_page_stays_open(
    api: str, alices_job: dict
) -> None:
    job_id = alices_job["id"]
    with keyed_client(api, None) as anonymous, keyed_client(api, "vb_" + "x" * 43) as stranger:
        for http in (anonymous, stranger):
            for method, path in [("GET", "/v1/jobs"), ("POST", "/v1/jobs"),
                                 ("GET", f"/v1/jobs/{job_id}"), ("DELETE", f"/v1/jobs/{job_id}"),
                                 ("GET", f"/v1/jobs/{job_id}/transcript.srt")]:
                assert_unauthorized(http.request(method, path))
            for route in ("transcriptions", "translations"):
                response = http.post(f"/v1/audio/{route}", files={"file": ("a.flac", b"x")})
                assert response.status_code == 401
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.json()["error"]["type"] == "invalid_request_error"
        for path in ("/healthz", "/", "/static/app.js", "/static/keys.js"):
            assert anonymous.get(path).status_code == 200, path
        assert anonymous.get("/readyz").status_code in (200, 503)
        # Not a Bearer header: refused the same way.
        assert_unauthorized(anonymous.get("/v1/jobs", headers={"Authorization": "Basic eDp5"}))


def test_the_key_in_the_query_string_is_taken_only_where_a_route_opts_in(
    auth_api: tuple[Process, str], alices_job: dict, alice: httpx.Client
) -> None:
    token = alice.headers["authorization"].removeprefix("Bearer ")
    job_id = alices_job["id"]
    with keyed_client(auth_api[1], None) as anonymous:
        download = anonymous.get(f"/v1/jobs/{job_id}/transcript.srt",
                                 params={"access_token": token})
        assert download.status_code == 200
        assert "-->" in download.text
        # The record is read by scripts that can send a header: no token in its URL.
        assert_unauthorized(anonymous.get(f"/v1/jobs/{job_id}", params={"access_token": token}))
        too_long = anonymous.get(f"/v1/jobs/{job_id}/transcript.srt",
                                 params={"access_token": "vb_" + "x" * 200})
        assert too_long.status_code == 422
        assert too_long.json()["error"]["code"] == "validation_error"
        assert_unauthorized(anonymous.get(f"/v1/jobs/{job_id}/transcript.srt",
                                          params={"access_token": "vb_wrong"}))
    lines = [r for r in auth_api[0].records() if r.get("logger") == "api.access"]
    downloads = [r for r in lines if r.get("path", "").endswith("/transcript.srt")]
    assert downloads
    assert all("?" not in r["path"] and token not in str(r) for r in downloads)


def test_a_revoked_key_is_refused_on_the_next_request_on_another_replica(
    api: str, replica: str, redis_url: str
) -> None:
    key_id, token = new_key(redis_url)
    with keyed_client(api, token) as first, keyed_client(replica, token) as second:
        assert first.get("/v1/jobs").status_code == 200
        assert second.get("/v1/jobs").status_code == 200
        revoke_key(redis_url, key_id)
        assert_unauthorized(second.get("/v1/jobs"))
        assert_unauthorized(first.get("/v1/jobs"))


def retry_after(response: httpx.Response, code: str) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    return int(response.headers["retry-after"])


def test_the_rate_limit_is_one_count_across_replicas(
    api: str, replica: str, redis_url: str, silence: Path
) -> None:
    _, token = new_key(redis_url, rate_per_minute=3)
    with keyed_client(api, token) as first, keyed_client(replica, token) as second:
        jobs = [submit(first, silence), submit(second, silence), submit(first, silence)]
        with silence.open("rb") as f:
            refused = second.post("/v1/jobs", files={"file": (silence.name, f)})
        assert 1 <= retry_after(refused, "rate_limited") <= 60
        with silence.open("rb") as f:
            response = first.post("/v1/audio/transcriptions", files={"file": (silence.name, f)},
                                  data={"model": "whisper-1"})
        assert response.status_code == 429
        assert response.json()["error"]["type"] == "rate_limit_error"
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
        for job in jobs:
            wait_for_job(first, job["id"])


def test_openais_sdk_sees_its_own_rate_limit_error(
    api: str, redis_url: str, silence: Path
) -> None:
    _, token = new_key(redis_url, rate_per_minute=1)
    with openai.OpenAI(base_url=f"{api}/v1", api_key=token, max_retries=0) as sdk:
        with silence.open("rb") as f:
            sdk.audio.transcriptions.create(model="whisper-1", file=f)
        with silence.open("rb") as f, pytest.raises(openai.RateLimitError) as refused:
            sdk.audio.transcriptions.create(model="whisper-1", file=f)
    assert refused.value.code == "rate_limited"
    assert int(refused.value.response.headers["retry-after"]) >= 1


def test_active_jobs_are_limited_across_replicas_and_free_up_as_jobs_end(
    api: str, replica: str, redis_url: str, silence: Path, long_recording: Path
) -> None:
    _, token = new_key(redis_url, max_active_jobs=2)
    with keyed_client(api, token) as first, keyed_client(replica, token) as second:
        running = submit(first, long_recording)
        waiting = submit(second, long_recording)
        with silence.open("rb") as f:
            refused = first.post("/v1/jobs", files={"file": (silence.name, f)})
        assert retry_after(refused, "too_many_active_jobs") >= 1
        with silence.open("rb") as f:
            refused = second.post("/v1/audio/translations", files={"file": (silence.name, f)})
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert int(refused.headers["retry-after"]) >= 1
        assert first.delete(f"/v1/jobs/{waiting['id']}").status_code == 204
        replacement = submit(second, silence)  # a deleted job no longer counts
        assert first.delete(f"/v1/jobs/{running['id']}").status_code == 204
        wait_for_job(first, replacement["id"])
        done = [submit(first, silence), submit(second, silence)]  # a finished one neither
        for job in done:
            wait_for_job(first, job["id"])


def test_audio_hours_per_day_answer_quota_exceeded(
    api: str, redis_url: str
) -> None:
    _, token = new_key(redis_url, max_audio_hours_per_day=15 / 3600)  # 15 s a day
    with keyed_client(api, token) as http:
        job = submit(http, JFK)  # 11 s
        with JFK.open("rb") as f:
            refused = http.post("/v1/jobs", files={"file": (JFK.name, f)})
        assert 1 <= retry_after(refused, "quota_exceeded") <= 24 * 3600
        wait_for_job(http, job["id"])


def test_the_job_list_pages_filters_and_refuses_bad_parameters(
    api: str, redis_url: str, silence: Path
) -> None:
    _, token = new_key(redis_url)
    with keyed_client(api, token) as http:
        made = [submit(http, silence)["id"] for _ in range(5)]
        for job_id in made:
            wait_for_job(http, job_id)
        seen, cursor = [], None
        while True:
            page = http.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor
                                                               else {})}).json()
            assert len(page["jobs"]) <= 2
            seen += [job["id"] for job in page["jobs"]]
            if not (cursor := page["next_cursor"]):
                break
        assert seen == made[::-1]
        record = http.get(f"/v1/jobs/{made[0]}").json()
        assert http.get("/v1/jobs", params={"limit": 100}).json()["jobs"][-1] == record
        assert http.get("/v1/jobs", params={"status": "queued"}).json()["jobs"] == []
        assert len(http.get("/v1/jobs", params={"status": "completed"}).json()["jobs"]) == 5
        assert http.delete(f"/v1/jobs/{made[-1]}").status_code == 204
        assert http.get("/v1/jobs", params={"limit": 1}).json()["jobs"][0]["id"] == made[-2]
        for params in ({"limit": 0}, {"limit": 101}, {"limit": "many"}, {"status": "done"},
                       {"cursor": "abc"}, {"cursor": "1" * 16 + "." + "g" * 32}):
            response = http.get("/v1/jobs", params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["code"] == "validation_error"


def test_the_api_and_the_worker_name_the_jobs_key_in_their_log_lines(
    alices_job: dict, auth_api: tuple[Process, str], worker: Process
) -> None:
    job_id = alices_job["id"]
    queued = next(r for r in auth_api[0].records()
                  if r.get("job_id") == job_id and r.get("event") == "queued")
    key_id = queued["key_id"]
    assert len(key_id) == 16
    access = [r for r in auth_api[0].records()
              if r.get("logger") == "api.access" and r.get("job_id") == job_id]
    # Each request's line names the key that sent it: the owner's were answered, another key's
    # got 404, and requests without a valid key name none (401, or 422 for a malformed one).
    assert {r.get("key_id") for r in access if r["status"] == 200} == {key_id}
    for line in access:
        if line.get("key_id") != key_id:
            assert line["status"] in ((404,) if "key_id" in line else (401, 422)), line
    done = [r for r in worker.records() if r.get("job_id") == job_id and r.get("event")]
    assert {r.get("key_id") for r in done} == {key_id}


def test_no_token_is_in_redis_or_in_any_log_line(
    redis_url: str, auth_api: tuple[Process, str], auth_api_2: tuple[Process, str],
    api_process: tuple[Process, str], worker: Process,
) -> None:
    assert len(TOKENS) >= 5
    client = redis.Redis.from_url(redis_url)
    stored = []
    for db in range(16):
        client.execute_command("SELECT", db)
        for key in client.scan_iter():
            stored.append(key)
            kind = client.type(key)
            if kind == b"string":
                stored.append(client.get(key) or b"")
            elif kind == b"hash":
                stored += [b for pair in client.hgetall(key).items() for b in pair]
            elif kind == b"list":
                stored += client.lrange(key, 0, -1)
            elif kind == b"set":
                stored += list(client.smembers(key))
            elif kind == b"zset":
                stored += client.zrange(key, 0, -1)
    client.close()
    everything = b"\n".join(stored)
    assert b"vb_" not in everything.replace(b"verbatim", b"")
    logs = "\n".join(p.output() for p in (auth_api[0], auth_api_2[0], api_process[0], worker))
    for token in TOKENS:
        assert token.encode() not in everything
        assert token not in logs
        assert token[3:] not in logs
