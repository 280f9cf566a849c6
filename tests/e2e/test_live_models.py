"""Live sessions routed per model (issue 22), with real live workers, models and Redis: one live
worker serving only `tiny.en`, one only `base`. A session reaches the live worker of its model
alone and gets that model's words; a model that no running live worker serves is refused at
`start` with `model_unavailable`, and a name outside the catalogue or what an English-only model
cannot do as for jobs, with nothing stored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jiwer
import pytest
import redis
from live_client import events_until_end, open_session, pcm16, stop, ws_url
from support import DATA, Process, spawn, start_api, wait_until

from cli.serve import live_worker_command
from shared.localredis import LocalRedis

JFK = DATA / "jfk.flac"
REFERENCE = next(e["reference"] for e in json.loads((DATA / "manifest.json").read_text())
                 if e["file"] == "jfk.flac")
# A catalogue entry that no live worker here serves (so it is never loaded).
EXTRA = {"small": {"source": "download", "location": "small"}}
# One second of 16 kHz 16-bit audio: under the tests' VERBATIM_LIVE_MAX_FRAME_BYTES.
FRAME_BYTES = 32000


def wer(text: str) -> float:
    def norm(words: str) -> str:
        return " ".join(jiwer.RemovePunctuation()(words.lower()).split())
    return float(jiwer.wer(norm(REFERENCE), norm(text)))


@dataclass
class LiveFleet:
    url: str
    redis_url: str
    live: dict[str, Process]  # by the one model each serves


@pytest.fixture(scope="module")
def fleet(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveFleet]:
    """A Redis and an API of their own, and two live workers: `tiny.en` alone, `base` alone."""
    tmp = tmp_path_factory.mktemp("live-fleet")
    with LocalRedis(tmp) as server:
        env = service_env | {"VERBATIM_REDIS_URL": server.url, "VERBATIM_DATA_DIR": str(tmp),
                             "VERBATIM_MODELS": json.dumps(EXTRA),
                             "VERBATIM_WORKER_METRICS_PORT": "0"}
        api, url = start_api(env, tmp / "api.log")
        live = {model: spawn(live_worker_command(number),
                             env | {"VERBATIM_WORKER_MODELS": model}, tmp / f"live-{model}.log")
                for number, model in enumerate(("tiny.en", "base"), start=1)}
        try:
            for process in live.values():
                wait_until(lambda p=process: "live worker warmed up" in p.output(),
                           "live worker warm-up", process, timeout=120)
            yield LiveFleet(url, server.url, live)
        finally:
            for process in (*live.values(), api):
                process.stop()


def models(url: str) -> dict[str, dict]:
    response = httpx.get(f"{url}/v1/models", timeout=10)
    assert response.status_code == 200, response.text
    return {model["id"]: model for model in response.json()["data"]}


def held(worker: Process, job_id: str) -> bool:
    return any(r.get("job_id") == job_id and r.get("event") == "live_started"
               for r in worker.records())


def test_the_models_list_names_the_live_workers_of_each_model(fleet: LiveFleet) -> None:
    listed = models(fleet.url)
    pids = {name: {w.split(":")[1] for w in listed[name]["live_workers"]} for name in listed}
    assert pids["small"] == set()
    assert pids["tiny.en"] == {str(fleet.live["tiny.en"].popen.pid)}
    assert pids["base"] == {str(fleet.live["base"].popen.pid)}
    assert all(model["workers"] == [] for model in listed.values())  # no transcription worker


@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_a_session_lands_on_its_models_live_worker_with_its_words(
    fleet: LiveFleet, model: str
) -> None:
    audio = pcm16(JFK)
    with open_session(ws_url(fleet.url), model=model) as (ws, started):
        assert started["type"] == "started", started
        for start in range(0, len(audio), FRAME_BYTES):  # faster than real time: a backlog
            ws.send(audio[start:start + FRAME_BYTES])
        stop(ws)
        events = events_until_end(ws)
    assert events[-1][1]["type"] == "done", events[-1]
    text = "".join(event["segment"]["text"] for _, event in events if event["type"] == "final")
    assert wer(text) <= 0.15, text
    job = httpx.get(f"{fleet.url}/v1/jobs/{started['job_id']}", timeout=10).json()
    assert (job["status"], job["options"]["model"]) == ("completed", model)
    other = "base" if model == "tiny.en" else "tiny.en"
    assert held(fleet.live[model], started["job_id"])
    assert not held(fleet.live[other], started["job_id"])


@pytest.mark.parametrize(("options", "code"), [
    ({"model": "small"}, "model_unavailable"),
    ({"model": "large-v9"}, "model_not_found"),
    ({"model": "tiny.en", "language": "de"}, "english_only_model"),
    ({"model": "tiny.en", "task": "translate"}, "english_only_model"),
    ({"model": "x" * 65}, "invalid_option"),
    ({"model": 7}, "invalid_option"),
])
def test_refused_at_start_with_nothing_stored(
    fleet: LiveFleet, options: dict[str, object], code: str
) -> None:
    with redis.Redis.from_url(fleet.redis_url) as client:
        before = set(client.scan_iter("verbatim:job:*")) | set(client.scan_iter("verbatim:live:*"))
        began = time.monotonic()
        with open_session(ws_url(fleet.url), **options) as (_, refused):
            assert refused["type"] == "error", refused
            assert refused["code"] == code, refused
        assert time.monotonic() - began < 5  # at once: no worker was asked to claim it
        if code == "model_unavailable":
            assert "serve base, tiny.en" in refused["message"], refused
        after = set(client.scan_iter("verbatim:job:*")) | set(client.scan_iter("verbatim:live:*"))
        assert after == before


def test_a_stopped_live_worker_is_withdrawn_and_its_model_refused(fleet: LiveFleet) -> None:
    """Last in the module: the `base` live worker stops cleanly, and withdraws its beat at
    once, so `base` sessions are refused (the `tiny.en` worker is still up)."""
    fleet.live["base"].stop()
    assert models(fleet.url)["base"]["live_workers"] == []
    with open_session(ws_url(fleet.url), model="base") as (_, refused):
        assert (refused["type"], refused["code"]) == ("error", "model_unavailable"), refused
    with open_session(ws_url(fleet.url)) as (_, refused):  # the default model is base
        assert refused["code"] == "model_unavailable", refused
