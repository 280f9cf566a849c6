"""Routing across a mixed fleet (issue 22), with real workers and real models: one worker
serving only `tiny.en`, one only `base`; each model's jobs land on its worker alone, each
transcribes jfk right, the OpenAI SDK lists the models and transcribes with `tiny.en`, and a
model nobody serves, a name outside the catalogue and what an English-only model cannot do are
refused at once, with nothing stored."""

from __future__ import annotations

import json
import string
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jiwer
import openai
import pytest
import redis
from support import DATA, Process, start_api, start_worker, submit, wait_for_job

from shared.localredis import LocalRedis

JFK = DATA / "jfk.flac"
REFERENCE = next(e["reference"] for e in json.loads((DATA / "manifest.json").read_text())
                 if e["file"] == "jfk.flac")
# A catalogue entry that no worker here serves (so it is never loaded).
EXTRA = {"small": {"source": "download", "location": "small"}}


def wer(text: str) -> float:
    def norm(words: str) -> str:
        return " ".join(words.lower().translate(str.maketrans("", "", string.punctuation)).split())
    return float(jiwer.wer(norm(REFERENCE), norm(text)))


class Fleet:
    def __init__(self, url: str, redis_url: str, data_dir: Path, tiny: Process,
                 base: Process) -> None:
        self.url, self.redis_url, self.data_dir = url, redis_url, data_dir
        self.tiny, self.base = tiny, base


@pytest.fixture(scope="module")
def fleet(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """A Redis, an API and two workers of their own: `tiny.en` alone, `base` alone."""
    tmp = tmp_path_factory.mktemp("fleet")
    with LocalRedis(tmp) as server:
        env = service_env | {"VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(tmp),
                             "VERBATIM_MODELS": json.dumps(EXTRA)}
        api, url = start_api(env, tmp / "api.log")
        tiny = start_worker(env | {"VERBATIM_WORKER_MODELS": "tiny.en"}, tmp / "tiny.log",
                            name="tiny")
        base = start_worker(env | {"VERBATIM_WORKER_MODELS": "base"}, tmp / "base.log",
                            name="base")
        try:
            with httpx.Client(base_url=url, timeout=30) as http:
                deadline = time.monotonic() + 30
                while not all(m["workers"] for m in models(http) if m["id"] != "small"):
                    assert time.monotonic() < deadline, "the workers never reported in"
                    time.sleep(0.1)
            yield Fleet(url, server.url, tmp, tiny, base)
        finally:
            for process in (base, tiny, api):
                process.stop()


@pytest.fixture
def http(fleet: Fleet) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fleet.url, timeout=60) as client:
        yield client


def models(http: httpx.Client) -> list[dict]:
    response = http.get("/v1/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return body["data"]


def ran_on(worker: Process, job_id: str) -> bool:
    return any(r.get("job_id") == job_id and r.get("event") == "completed"
               for r in worker.records())


def test_each_models_jobs_land_on_its_worker_alone_with_its_words(
    fleet: Fleet, http: httpx.Client
) -> None:
    tiny_id = submit(http, JFK, model="tiny.en")["id"]
    base_id = submit(http, JFK, model="base")["id"]
    default_id = submit(http, JFK)["id"]  # no model: the default, `base`
    jobs = {job_id: wait_for_job(http, job_id) for job_id in (tiny_id, base_id, default_id)}
    assert all(job["status"] == "completed" for job in jobs.values()), jobs
    assert [jobs[i]["options"]["model"] for i in (tiny_id, base_id, default_id)] == [
        "tiny.en", "base", "base"]
    assert ran_on(fleet.tiny, tiny_id)
    assert not ran_on(fleet.base, tiny_id)
    for job_id in (base_id, default_id):
        assert ran_on(fleet.base, job_id)
        assert not ran_on(fleet.tiny, job_id)
    for job_id in (tiny_id, base_id):
        text = http.get(f"/v1/jobs/{job_id}/transcript").json()["text"]
        assert wer(text) <= 0.1, (job_id, text)


def test_the_models_list_says_who_serves_what(fleet: Fleet, http: httpx.Client) -> None:
    listed = {m["id"]: m for m in models(http)}
    assert set(listed) == {"base", "tiny.en", "small"}
    assert listed["base"]["default"]
    assert not listed["tiny.en"]["default"]
    assert listed["tiny.en"]["languages"] == ["en"]
    assert not listed["tiny.en"]["translates"]
    assert "ko" in listed["base"]["languages"]
    assert listed["base"]["multilingual"]
    pids = {name: {w.split(":")[1] for w in listed[name]["workers"]} for name in listed}
    assert pids["small"] == set()
    assert len(pids["tiny.en"]) == len(pids["base"]) == 1
    assert pids["tiny.en"] != pids["base"]
    assert listed["tiny.en"]["loaded"] == listed["tiny.en"]["workers"]


@pytest.mark.parametrize(("fields", "status", "code"), [
    ({"model": "large-v9"}, 422, "model_not_found"),
    ({"model": "small"}, 503, "model_unavailable"),
    ({"model": "tiny.en", "language": "de"}, 422, "english_only_model"),
    ({"model": "tiny.en", "language": "en,ko"}, 422, "english_only_model"),
    ({"model": "tiny.en", "task": "translate"}, 422, "english_only_model"),
    ({"model": "tiny.en", "multilingual": "true"}, 422, "english_only_model"),
    ({"model": "x" * 65}, 422, "validation_error"),
])
def test_refused_at_once_with_nothing_stored(
    fleet: Fleet, http: httpx.Client, fields: dict[str, str], status: int, code: str
) -> None:
    uploads = fleet.data_dir / "uploads"
    with redis.Redis.from_url(fleet.redis_url) as client:
        jobs, files = set(client.scan_iter("verbatim:job:*")), set(uploads.glob("*"))
        with JFK.open("rb") as f:
            response = http.post("/v1/jobs", files={"file": (JFK.name, f)}, data=fields)
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code
        assert set(client.scan_iter("verbatim:job:*")) == jobs
    assert set(uploads.glob("*")) == files


def test_a_json_url_job_is_refused_for_an_unknown_model(http: httpx.Client) -> None:
    response = http.post("/v1/jobs", json={"url": "http://127.0.0.1:9/a.flac", "model": "nope"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "model_not_found"


def test_the_openai_sdk_lists_models_and_transcribes_with_tiny_en(fleet: Fleet) -> None:
    with openai.OpenAI(base_url=f"{fleet.url}/v1", api_key="dummy", max_retries=0) as sdk:
        assert {m.id for m in sdk.models.list()} == {"base", "tiny.en", "small"}
        text = sdk.audio.transcriptions.create(model="tiny.en", file=("jfk.flac", JFK.read_bytes()),
                                               response_format="text")
        assert wer(text) <= 0.1, text
        default = sdk.audio.transcriptions.create(model="whisper-1", file=("jfk.flac",
                                                  JFK.read_bytes()), response_format="text")
        assert wer(default) <= 0.1, default
        # OpenAI's routes answer a refused request with 400, in OpenAI's error shape.
        with pytest.raises(openai.BadRequestError) as refused:
            sdk.audio.translations.create(model="tiny.en", file=("jfk.flac", JFK.read_bytes()))
        assert refused.value.code == "english_only_model"
        with pytest.raises(openai.BadRequestError) as unknown:
            sdk.audio.transcriptions.create(model="large-v9", file=("jfk.flac", JFK.read_bytes()))
        assert unknown.value.code == "model_not_found"


def test_one_worker_with_a_budget_for_one_model_finishes_jobs_for_both(
    fleet: Fleet, http: httpx.Client, service_env: dict[str, str]
) -> None:
    """Last in the module: the two single-model workers stop, so every job lands here."""
    fleet.tiny.stop()
    fleet.base.stop()
    env = service_env | {"VERBATIM_REDIS_URL": fleet.redis_url,
                         "VERBATIM_DATA_DIR": str(fleet.data_dir),
                         "VERBATIM_MODELS": json.dumps(EXTRA),
                         "VERBATIM_WORKER_MODELS": "base,tiny.en",
                         "VERBATIM_MODEL_MEMORY_MB": "150"}  # base ~110 MB, tiny.en ~70 MB
    both = start_worker(env, fleet.data_dir / "both.log", name="both")
    try:
        ids = [submit(http, JFK, model=name)["id"] for name in ("tiny.en", "base", "tiny.en")]
        jobs = [wait_for_job(http, job_id) for job_id in ids]
        assert [job["status"] for job in jobs] == ["completed"] * 3, jobs
        for job_id in ids:
            assert ran_on(both, job_id)
            assert wer(http.get(f"/v1/jobs/{job_id}/transcript").json()["text"]) <= 0.1
        unloaded = [r["model"] for r in both.records() if r.get("message") == "model unloaded"]
        assert unloaded == ["base", "tiny.en", "base"]
    finally:
        both.stop()
