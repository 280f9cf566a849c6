"""Every bad input gets its status and stable code, leaves no file behind, and queues nothing.

These run the real app in-process against a real Redis database that no worker consumes, so
the queue can be inspected after each request.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from support import DATA

from api.main import create_app
from shared.config import Settings
from shared.localredis import free_port
from shared.queue import queue_depth

JFK = DATA / "jfk.flac"


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_url.rsplit("/", 1)[0] + "/1",
        data_dir=tmp_path / "data",
        max_upload_bytes=2 * 1024 * 1024,
        max_audio_seconds=30,
    )


def post_file(api: TestClient, name: str, content: bytes, **fields: str) -> tuple[int, str]:
    response = api.post("/v1/jobs", files={"file": (name, content)}, data=fields)
    return response.status_code, response.json()["error"]["code"]


def assert_nothing_left(settings: Settings, queue_db: redis.Redis) -> None:
    assert queue_depth(queue_db) == 0
    assert list(queue_db.scan_iter("verbatim:*")) == []
    uploads = settings.upload_dir
    assert not uploads.exists() or list(uploads.iterdir()) == []


def video_without_audio(path: Path) -> bytes:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def test_a_valid_upload_is_queued(api: TestClient, queue_db: redis.Redis) -> None:
    response = api.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())})
    assert response.status_code == 202
    assert queue_depth(queue_db) == 1
    job_id = response.json()["id"]
    pending = api.get(f"/v1/jobs/{job_id}/transcript.srt")
    assert (pending.status_code, pending.json()["error"]["code"]) == (409, "job_not_ready")


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("notes.txt", b"this is not audio at all\n" * 10, 415, "unsupported_media"),
        ("song.mp3", b"ID3\x03\x00\x00\x00" + bytes(range(256)) * 4, 415, "unsupported_media"),
        ("empty.wav", b"", 400, "empty_file"),
    ],
)
def test_bad_files_are_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis,
    name: str, content: bytes, status: int, code: str,
) -> None:
    assert post_file(api, name, content) == (status, code)
    assert_nothing_left(settings, queue_db)


def test_video_without_audio_is_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis, tmp_path: Path
) -> None:
    content = video_without_audio(tmp_path / "silent-film.mp4")
    assert post_file(api, "silent-film.mp4", content) == (415, "unsupported_media")
    assert_nothing_left(settings, queue_db)


def test_too_long_a_recording_is_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis, tmp_path: Path
) -> None:
    long_audio = (DATA / "LJ001-0001.flac").read_bytes()  # 9.7 s
    settings.max_audio_seconds = 5
    assert post_file(api, "LJ001-0001.flac", long_audio) == (413, "duration_exceeded")
    assert_nothing_left(settings, queue_db)


def test_oversized_upload_is_refused_by_declared_length(
    api: TestClient, settings: Settings, queue_db: redis.Redis
) -> None:
    big = b"\0" * (settings.max_upload_bytes + 200_000)
    assert post_file(api, "big.wav", big) == (413, "payload_too_large")
    assert_nothing_left(settings, queue_db)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "summarise"}, "task"),
        ({"beam_size": "0"}, "beam_size"),
        ({"word_timestamps": "perhaps"}, "word_timestamps"),
        ({"colour": "blue"}, "colour"),
        ({"language": "klingon"}, "language"),
        ({"language": "ko,klingon"}, "'klingon'"),
        ({"language": "ko,,en"}, "language"),
        ({"language": "auto,en"}, "'auto'"),
        ({"multilingual": "sometimes"}, "multilingual"),
        ({"script": "cyrillic"}, "script"),
        ({"script": "Simplified"}, "script"),
        ({"batch_size": "0"}, "batch_size"),
        ({"batch_size": "65"}, "batch_size"),
        ({"batch_size": "eight"}, "batch_size"),
        ({"batch_size": "2.5"}, "batch_size"),
        ({"batch_size": "8", "vad_filter": "false"}, "needs vad_filter"),
        ({"sounds": "sometimes"}, "sounds"),
        ({"sounds": "2"}, "sounds"),
    ],
)
def test_bad_options_are_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis, fields: dict, message: str
) -> None:
    response = api.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())}, data=fields)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert message in response.json()["error"]["message"]
    assert_nothing_left(settings, queue_db)


def test_missing_file_and_wrong_content_type(
    api: TestClient, settings: Settings, queue_db: redis.Redis
) -> None:
    no_file = api.post("/v1/jobs", data={"language": "en"}, files={"other": ("a", b"x")})
    assert (no_file.status_code, no_file.json()["error"]["code"]) == (422, "validation_error")
    as_json = api.post("/v1/jobs", json={"file": "jfk.flac"})
    assert (as_json.status_code, as_json.json()["error"]["code"]) == (422, "validation_error")
    assert_nothing_left(settings, queue_db)


HUGE = "9" * 5000  # past Python's 4300-digit limit on int("...") (CVE-2020-10735)


@pytest.mark.parametrize("body", [
    f'{{"url": "https://example.com/a.wav", "retention_seconds": {HUGE}}}',
    f'{{"url": "https://example.com/a.wav", "metadata": {{"n": {HUGE}}}}}',
    f'{{"url": {HUGE}}}',
    f"[{HUGE}]",
])
def test_a_huge_json_integer_is_a_422(
    api: TestClient, settings: Settings, queue_db: redis.Redis, body: str
) -> None:
    response = api.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "JSON" in response.json()["error"]["message"]
    assert_nothing_left(settings, queue_db)


def test_a_huge_integer_in_a_form_field_is_a_422(api: TestClient, queue_db: redis.Redis) -> None:
    response = api.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())},
                        data={"metadata": f'{{"n": {HUGE}}}', "retention_seconds": HUGE})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert queue_depth(queue_db) == 0


@pytest.mark.parametrize("path", ["/v1/jobs/0123456789abcdef0123456789abcdef",
                                  "/v1/jobs/not-an-id", "/v1/jobs/x/transcript.srt"])
def test_unknown_job(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "job_not_found")
    assert api.delete(path.removesuffix("/transcript.srt")).status_code == 404


def test_unknown_route_and_method_use_the_envelope(api: TestClient) -> None:
    response = api.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    wrong = api.put("/v1/jobs/0123456789abcdef0123456789abcdef")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "method_not_allowed")
    assert "GET" in wrong.headers["allow"]


def test_redis_unreachable_is_503(settings: Settings, tmp_path: Path) -> None:
    settings.redis_url = f"redis://127.0.0.1:{free_port()}/0"
    with TestClient(create_app(settings)) as api:
        response = api.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())})
        assert response.status_code == 503
        body = response.json()
        assert body["error"]["code"] == "service_unavailable"
        assert "Traceback" not in response.text
        assert api.get("/v1/jobs/0123456789abcdef0123456789abcdef").status_code == 503
    assert list(settings.upload_dir.iterdir()) == []


def test_openapi_documents_the_upload_form_and_errors(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    post = spec["paths"]["/v1/jobs"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["oneOf"] == [{"required": ["file"]}, {"required": ["url"]}]
    assert {"file", "url", "language", "task", "word_timestamps", "beam_size", "webhook_url",
            "metadata", "retention_seconds"} <= set(form["properties"])
    assert post["requestBody"]["content"]["application/json"]["schema"]["required"] == ["url"]
    assert {"202", "400", "413", "415", "422", "503"} <= set(post["responses"])
    assert api.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b"garbage without any boundary",
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF',
    ],
    ids=["malformed", "unterminated"],
)
def test_broken_multipart_is_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis, body: bytes
) -> None:
    response = api.post(
        "/v1/jobs", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    assert_nothing_left(settings, queue_db)


def test_an_unexpected_error_is_a_500_envelope_that_names_the_request(
    settings: Settings, queue_db: redis.Redis
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "An unexpected error occurred."}
    }
    assert response.headers["X-Request-ID"] == "trace-500"


def test_a_flood_of_empty_form_parts_is_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis
) -> None:
    parts = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\r\n' for _ in range(2000)
    )
    body = parts + b"--b--\r\n"
    response = api.post(
        "/v1/jobs", content=body, headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
    assert "too large" in response.json()["error"]["message"]
    assert_nothing_left(settings, queue_db)
