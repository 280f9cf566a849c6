"""The OpenAI-compatible routes in-process: form checks, error shape, the 202 answer, rendering.

A real Redis database that no worker consumes: jobs stay queued, so the queue and the upload
directory can be inspected after each request. tests/e2e/test_openai.py drives the same routes
with OpenAI's SDK, a worker and the model.
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from support import DATA

from api.main import create_app
from api.openai_compat import AudioRequest, compression_ratio, diarized, parse_form, verbose
from shared.config import Settings
from shared.errors import DecodeError, InvalidRequest
from shared.localredis import free_port
from shared.queue import queue_depth
from shared.schemas import JobOptions, Segment, Transcript, Word
from shared.state.jobs import JobStore
from shared.turns import speakers_of

JFK = DATA / "jfk.flac"
TRANSCRIBE = "/v1/audio/transcriptions"
TRANSLATE = "/v1/audio/translations"


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url.rsplit("/", 1)[0] + "/5",
        data_dir=tmp_path / "data",
        max_upload_bytes=2 * 1024 * 1024,
        openai_wait_seconds=0,
    )


def post(api: TestClient, path: str = TRANSCRIBE, content: bytes | None = None,
         name: str = "jfk.flac", **fields: str | list[str]) -> tuple[int, dict]:
    file = JFK.read_bytes() if content is None else content
    response = api.post(path, files={"file": (name, file)}, data={"model": "whisper-1", **fields})
    return response.status_code, response.json()


def assert_nothing_left(settings: Settings, queue_db: redis.Redis) -> None:
    assert queue_depth(queue_db) == 0
    assert list(queue_db.scan_iter("verbatim:*")) == []
    assert not settings.upload_dir.exists() or list(settings.upload_dir.iterdir()) == []


def openai_error(body: dict) -> tuple[str, str | None, str]:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error["type"], error["param"], error["code"]


@pytest.mark.parametrize(
    ("path", "fields", "param"),
    [
        (TRANSCRIBE, {"response_format": "xml"}, "response_format"),
        (TRANSCRIBE, {"timestamp_granularities[]": ["word"]}, "timestamp_granularities"),
        (TRANSCRIBE, {"response_format": "verbose_json", "timestamp_granularities[]": "char"},
         "timestamp_granularities"),
        (TRANSCRIBE, {"temperature": "1.5"}, "temperature"),
        (TRANSCRIBE, {"temperature": "warm"}, "temperature"),
        (TRANSCRIBE, {"language": "klingon"}, "language"),
        (TRANSCRIBE, {"language": "ko,xx"}, "language"),
        (TRANSCRIBE, {"multilingual": "maybe"}, "multilingual"),
        (TRANSCRIBE, {"script": "latin"}, "script"),
        (TRANSLATE, {"script": "simplified"}, "script"),
        (TRANSCRIBE, {"prompt": "x" * 2001}, "prompt"),
        (TRANSCRIBE, {"stream": "maybe"}, "stream"),
        (TRANSCRIBE, {"stream": "yes"}, "stream"),
        (TRANSCRIBE, {"stream": "true", "response_format": "srt"}, "stream"),
        (TRANSCRIBE, {"stream": "1", "response_format": "verbose_json"}, "stream"),
        (TRANSLATE, {"stream": "true"}, "stream"),
        (TRANSCRIBE, {"beam_size": "3"}, "beam_size"),
        (TRANSLATE, {"language": "de"}, "language"),
    ],
)
def test_bad_fields_are_400_naming_the_param(
    api: TestClient, settings: Settings, queue_db: redis.Redis,
    path: str, fields: dict, param: str,
) -> None:
    status, body = post(api, path, **fields)
    assert status == 400
    assert openai_error(body) == ("invalid_request_error", param, "validation_error")
    assert_nothing_left(settings, queue_db)


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("notes.txt", b"this is not audio at all\n" * 10, 415, "unsupported_media"),
        ("empty.wav", b"", 400, "empty_file"),
        ("big.wav", b"\0" * (3 * 1024 * 1024), 413, "payload_too_large"),
    ],
)
def test_bad_files_get_openai_errors_naming_file(
    api: TestClient, settings: Settings, queue_db: redis.Redis,
    name: str, content: bytes, status: int, code: str,
) -> None:
    answered, body = post(api, TRANSCRIBE, content, name)
    assert answered == status
    assert openai_error(body) == ("invalid_request_error", "file", code)
    assert_nothing_left(settings, queue_db)


def test_missing_file_names_file(api: TestClient) -> None:
    response = api.post(TRANSCRIBE, data={"model": "whisper-1"}, files={"audio": ("a", b"x")})
    assert response.status_code == 400
    assert openai_error(response.json()) == ("invalid_request_error", "file", "validation_error")


def test_unknown_paths_and_methods_under_audio_use_openai_shape(api: TestClient) -> None:
    speech = api.post("/v1/audio/speech")
    assert speech.status_code == 404
    assert openai_error(speech.json())[2] == "not_found"
    wrong = api.get(TRANSCRIBE)
    assert wrong.status_code == 405
    assert openai_error(wrong.json())[2] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]
    # Every other route keeps the service's own envelope.
    other = api.get("/v1/jobs/0123456789abcdef0123456789abcdef").json()
    assert other == {"error": {"code": "job_not_found", "message": other["error"]["message"]}}


def test_redis_down_is_a_server_error(settings: Settings) -> None:
    settings.redis_url = f"redis://127.0.0.1:{free_port()}/0"
    with TestClient(create_app(settings)) as api:
        status, body = post(api)
    assert status == 503
    assert openai_error(body) == ("server_error", None, "service_unavailable")


def test_past_the_wait_a_queued_job_is_202_with_location(
    api: TestClient, queue_db: redis.Redis
) -> None:
    response = api.post(
        TRANSCRIBE, files={"file": ("jfk.flac", JFK.read_bytes())},
        data={"model": "whisper-1", "prompt": "Kennedy", "temperature": "0.4",
              "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
    )
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "queued"
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert response.headers["x-verbatim-job-id"] == job["id"]
    assert queue_depth(queue_db) == 1
    options = api.get(response.headers["location"]).json()["options"]
    assert options | {"language": None} == JobOptions(  # `whisper-1`: the default model
        model="base", task="transcribe", word_timestamps=True, initial_prompt="Kennedy",
        temperature=0.4,
    ).model_dump()


def test_a_job_failing_while_the_request_waits_is_an_openai_error(
    api: TestClient, settings: Settings, queue_db: redis.Redis
) -> None:
    settings.openai_wait_seconds = 30
    store = JobStore.from_url(settings.redis_url)

    def fail_the_job() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for key in queue_db.scan_iter("verbatim:job:*"):
                job_id = key.decode().rsplit(":", 1)[1]
                store.fail(job_id, DecodeError("The audio could not be decoded (EOF)."), 60)
                return
            time.sleep(0.05)

    failer = threading.Thread(target=fail_the_job)
    failer.start()
    response = api.post(TRANSLATE, files={"file": ("jfk.flac", JFK.read_bytes())})
    failer.join()
    store.redis.close()
    assert response.status_code == 400
    assert openai_error(response.json()) == ("invalid_request_error", None, "decode_error")
    assert response.headers["x-should-retry"] == "false"
    job = api.get(f"/v1/jobs/{response.headers['x-verbatim-job-id']}").json()
    assert (job["status"], job["options"]["task"]) == ("failed", "translate")


def test_temperature_zero_keeps_the_fallback_schedule() -> None:
    form = parse_form({"temperature": ["0"], "prompt": [""]}, "transcribe")
    assert form.options == JobOptions()
    assert parse_form({"temperature": ["0.6"]}, "translate").options.temperature == 0.6


def test_granularities_accept_the_plain_field_name() -> None:
    fields = {"response_format": ["verbose_json"], "timestamp_granularities": ["word"]}
    form = parse_form(fields, "transcribe")
    assert form.granularities == {"word"}
    assert form.options.word_timestamps is True
    with pytest.raises(InvalidRequest):
        parse_form({"timestamp_granularities": ["segment"]}, "transcribe")


TRANSCRIPT = Transcript(
    language="en", language_probability=0.98, duration=4.0, text="Ask not. Ask.",
    segments=[
        Segment(id=1, start=0.0, end=2.5, text=" Ask not.", avg_logprob=-0.2, no_speech_prob=0.01,
                words=[Word(start=0.0, end=0.4, word=" Ask", probability=0.9),
                       Word(start=0.5, end=2.5, word=" not.", probability=0.8)]),
        Segment(id=2, start=2.5, end=4.0, text=" Ask.", avg_logprob=-0.3, no_speech_prob=0.02,
                words=[Word(start=2.6, end=3.9, word=" Ask.", probability=0.7)]),
    ],
)


def form(*granularities: str, task: str = "translate") -> AudioRequest:
    return AudioRequest(task, "verbose_json", frozenset(granularities),  # type: ignore[arg-type]
                        JobOptions(task=task))  # type: ignore[arg-type]


def test_verbose_json_fills_openai_fields_from_the_transcript() -> None:
    result = verbose(form("segment", "word"), TRANSCRIPT).model_dump()
    assert (result["task"], result["language"], result["duration"]) == ("translate", "english", 4.0)
    assert result["words"] == [{"word": "Ask", "start": 0.0, "end": 0.4},
                               {"word": "not.", "start": 0.5, "end": 2.5},
                               {"word": "Ask.", "start": 2.6, "end": 3.9}]
    first = result["segments"][0]
    assert first == {
        "id": 0, "seek": 0, "start": 0.0, "end": 2.5, "text": " Ask not.", "tokens": [],
        "temperature": 0.0, "avg_logprob": -0.2,
        "compression_ratio": compression_ratio(" Ask not."), "no_speech_prob": 0.01,
    }
    assert (result["segments"][1]["id"], result["segments"][1]["seek"]) == (1, 250)


def test_verbose_json_returns_the_granularities_asked_for() -> None:
    assert verbose(form("segment"), TRANSCRIPT).words is None
    assert verbose(form("word"), TRANSCRIPT).segments is None


def test_compression_ratio_flags_repetition() -> None:
    assert compression_ratio("") == 0.0
    assert compression_ratio("thank you " * 40) > 2.4 > compression_ratio("Ask not what.")


def test_openapi_documents_the_openai_forms(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    for path, language in ((TRANSCRIBE, True), (TRANSLATE, False)):
        post_ = paths[path]["post"]
        form_ = post_["requestBody"]["content"]["multipart/form-data"]["schema"]
        expected = {"file", "model", "prompt", "response_format", "temperature",
                    "timestamp_granularities[]"}
        assert expected <= set(form_["properties"])
        assert ("language" in form_["properties"]) is language
        assert form_["properties"]["response_format"]["enum"] == [
            "json", "text", "srt", "verbose_json", "vtt", *(["diarized_json"] if language else [])
        ]
        assert {"200", "202", "400", "413", "415", "500", "503"} <= set(post_["responses"])
        assert "text/plain" in post_["responses"]["200"]["content"]


def test_candidates_the_mode_and_the_script_reach_the_job() -> None:
    form = parse_form({"language": ["KO,en"], "multilingual": ["true"],
                       "script": ["traditional"]}, "transcribe")
    assert (form.options.language, form.options.multilingual, form.options.script) == (
        "ko,en", True, "traditional")


CLIP_URL = "data:audio/wav;base64," + base64.b64encode(b"RIFF....WAVE").decode()


def test_known_speakers_come_with_diarized_json_and_a_clip_each() -> None:
    form = parse_form({"response_format": ["diarized_json"], "known_speaker_names[]": ["ann"],
                       "known_speaker_references[]": [CLIP_URL]}, "transcribe")
    assert (form.options.diarize, form.options.known_speakers) == ("voices", "ann")
    assert form.references == (("ann", b"RIFF....WAVE"),)


@pytest.mark.parametrize(("fields", "param"), [
    ({"response_format": ["json"], "known_speaker_names[]": ["ann"],
      "known_speaker_references[]": [CLIP_URL]}, "known_speaker_names"),
    ({"response_format": ["diarized_json"], "known_speaker_names[]": ["ann", "bob"],
      "known_speaker_references[]": [CLIP_URL]}, "known_speaker_names"),
    ({"response_format": ["diarized_json"], "known_speaker_names[]": ["a,b"],
      "known_speaker_references[]": [CLIP_URL]}, "known_speaker_names"),
    ({"response_format": ["diarized_json"], "known_speaker_names[]": list("abcde"),
      "known_speaker_references[]": [CLIP_URL] * 5}, "known_speaker_names"),
    ({"response_format": ["diarized_json"], "known_speaker_names[]": ["ann"],
      "known_speaker_references[]": ["https://example.com/ann.wav"]},
     "known_speaker_references"),
])
def test_bad_known_speakers_are_refused(fields: dict[str, list[str]], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_form(fields, "transcribe")
    assert caught.value.param == param


def test_diarized_json_letters_the_unnamed_speakers() -> None:
    segments = [Segment(id=i, start=i, end=i + 1, text=f" {who}", speaker=who)
                for i, who in enumerate(["S1", "S2", "S3"])]
    transcript = Transcript(language="en", duration=3, text="x", segments=segments,
                            speakers=speakers_of(segments, {"S2": "ann"}))
    assert [s.speaker for s in diarized(transcript).segments] == ["A", "ann", "B"]
