"""Named speakers (issue 21): a key enrols a voice from a clip, a later job of that key names
the speaker with that voice, another key neither sees nor matches it, and enrolments count
against the key's rate as jobs do; with the real worker, Whisper model and speaker embedder, on
a conversation of two real readers."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from conversations import TWO, Turn, build, in_data
from support import (
    DATA,
    Process,
    keyed_client,
    make_key,
    revoke_key,
    submit,
    wait_for_job,
    write_silence,
    write_wav,
)

from shared.state.voices import VoiceStore

# Reader 1089's clips, other than the utterances of the conversation: 5.4 s, and 2.1 s.
ALICE_CLIP = DATA / "1089-134691-0001.flac"
SHORT_CLIP = DATA / "1089-134691-0000.flac"


@pytest.fixture(scope="module")
def api(auth_api: tuple[Process, str]) -> str:
    return auth_api[1]


@pytest.fixture(scope="module")
def keys(redis_url: str) -> dict[str, tuple[str, str]]:
    return {name: make_key(redis_url, name) for name in ("a", "b", "full")}


@pytest.fixture(scope="module")
def http(api: str, keys: dict[str, tuple[str, str]]) -> Iterator[dict[str, httpx.Client]]:
    clients = {name: keyed_client(api, token) for name, (_, token) in keys.items()}
    for client in clients.values():
        client.timeout = httpx.Timeout(120)
    yield clients
    for client in clients.values():
        client.close()


def enrol(http: httpx.Client, name: str, clip: Path) -> httpx.Response:
    with clip.open("rb") as f:
        return http.post("/v1/speakers", data={"name": name}, files={"file": (clip.name, f)})


@pytest.fixture(scope="module")
def alice(http: dict[str, httpx.Client]) -> dict:
    response = enrol(http["a"], "alice", ALICE_CLIP)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Turn]]:
    path = tmp_path_factory.mktemp("named") / "two.flac"
    return path, build(in_data(TWO), path)


def test_an_enrolled_voice_names_its_speaker_in_a_later_job(
    http: dict[str, httpx.Client], alice: dict, conversation: tuple[Path, list[Turn]]
) -> None:
    assert alice["name"] == "alice"
    job = wait_for_job(http["a"], submit(http["a"], conversation[0], diarize="voices",
                                         known_speakers="alice")["id"])
    assert job["status"] == "completed", job
    named = {s["label"]: s["name"] for s in job["speakers"]}
    assert sorted(map(str, named.values())) == ["None", "alice"]
    transcript = http["a"].get(f"/v1/jobs/{job['id']}/transcript.json").json()
    alices = [label for label, name in named.items() if name == "alice"]
    said = " ".join(s["text"] for s in transcript["segments"] if s["speaker"] in alices).lower()
    assert "stew for dinner" in said  # reader 1089's first turn
    assert "printing" not in said  # LJ Speech's reader's
    assert "alice: " in http["a"].get(f"/v1/jobs/{job['id']}/transcript.txt").text.lower()


def test_another_key_neither_sees_nor_names_the_voice(
    http: dict[str, httpx.Client], alice: dict, conversation: tuple[Path, list[Turn]]
) -> None:
    assert http["b"].get("/v1/speakers").json() == {"speakers": []}
    assert [v["name"] for v in http["a"].get("/v1/speakers").json()["speakers"]] == ["alice"]
    with conversation[0].open("rb") as f:
        refused = http["b"].post("/v1/jobs", files={"file": ("two.flac", f)},
                                 data={"diarize": "voices", "known_speakers": "alice"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "unknown_speaker"


def test_bad_enrolments_are_refused(http: dict[str, httpx.Client], tmp_path: Path,
                                    redis_url: str, keys: dict[str, tuple[str, str]]) -> None:
    short = enrol(http["b"], "bob", SHORT_CLIP)
    assert (short.status_code, short.json()["error"]["code"]) == (422, "reference_too_short")
    silence = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 5, np.float32))
    quiet = enrol(http["b"], "bob", silence)
    assert (quiet.status_code, quiet.json()["error"]["code"]) == (422, "no_speech")
    for bad in ("", " ", "-bob", "x" * 41, "a,b"):
        named = enrol(http["b"], bad, ALICE_CLIP)
        assert (named.status_code, named.json()["error"]["code"]) == (422, "validation_error")
    store = VoiceStore(redis.Redis.from_url(redis_url))
    for i in range(50):  # the worker's VERBATIM_MAX_VOICES_PER_KEY, 50 by default
        store.enrol(keys["full"][0], f"voice {i}", [1.0, 0.0], most=50)
    full = enrol(http["full"], "one more", ALICE_CLIP)
    assert (full.status_code, full.json()["error"]["code"]) == (409, "too_many_voices")
    assert http["b"].get("/v1/speakers").json() == {"speakers": []}  # nothing half-written


def test_deleting_a_voice_and_revoking_a_key(http: dict[str, httpx.Client], alice: dict,
                                             redis_url: str,
                                             keys: dict[str, tuple[str, str]]) -> None:
    assert enrol(http["b"], "carol", ALICE_CLIP).status_code == 201
    assert http["b"].delete("/v1/speakers/carol").status_code == 204
    gone = http["b"].delete("/v1/speakers/carol")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "voice_not_found")
    revoke_key(redis_url, keys["a"][0])
    assert VoiceStore(redis.Redis.from_url(redis_url)).names(keys["a"][0]) == []


def test_enrolments_count_against_the_keys_rate_as_jobs_do(api: str, redis_url: str,
                                                            tmp_path: Path) -> None:
    _, token = make_key(redis_url, "paced", rate_per_minute=1)
    silence = write_silence(tmp_path / "quiet.wav", 1.0)
    with keyed_client(api, token) as http:
        job = submit(http, silence)  # the key's one request of the minute
        refused = enrol(http, "alice", ALICE_CLIP)
        assert (refused.status_code, refused.json()["error"]["code"]) == (429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert http.get("/v1/speakers").json() == {"speakers": []}
        wait_for_job(http, job["id"])

    _, token = make_key(redis_url, "paced-references", rate_per_minute=1)
    clip = base64.b64encode(ALICE_CLIP.read_bytes()).decode()
    with keyed_client(api, token) as http, silence.open("rb") as f:
        # The request is the minute's one; its reference clip, a second, is over the rate.
        answer = http.post("/v1/audio/transcriptions", files={"file": (silence.name, f)}, data={
            "model": "gpt-4o-transcribe-diarize", "response_format": "diarized_json",
            "known_speaker_names[]": "alice",
            "known_speaker_references[]": f"data:audio/flac;base64,{clip}"})
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"]["code"] == "rate_limited"
        assert answer.json()["error"]["type"] == "rate_limit_error"
        assert int(answer.headers["retry-after"]) >= 1
        assert http.get("/v1/jobs").json()["jobs"] == []  # nothing queued
