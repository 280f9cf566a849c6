"""`GET /v1/jobs/{id}/audio`: a kept recording served back with Range support, and the
stable errors when it is not kept or not ready. Real API processes, worker and model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import DATA, submit, wait_for_job, write_scripted_wav

from shared.errors import DecodeError
from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id

JFK = DATA / "jfk.flac"


@pytest.fixture(scope="module")
def keeping(keeping_api_url: str, worker: object) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=keeping_api_url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def kept_job(keeping: httpx.Client) -> str:
    job = submit(keeping, JFK)
    assert wait_for_job(keeping, job["id"])["status"] == "completed"
    return str(job["id"])


def upload_files(service_env: dict[str, str], job_id: str) -> list[Path]:
    return list((Path(service_env["VERBATIM_DATA_DIR"]) / "uploads").glob(f"{job_id}*"))


def test_a_kept_recording_is_served_whole_and_by_range(
    keeping: httpx.Client, kept_job: str
) -> None:
    whole = keeping.get(f"/v1/jobs/{kept_job}/audio")
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/flac"
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-disposition"].startswith("inline")
    assert whole.content == JFK.read_bytes()

    part = keeping.get(f"/v1/jobs/{kept_job}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{JFK.stat().st_size}"
    assert part.content == JFK.read_bytes()[100:200]

    beyond = keeping.get(f"/v1/jobs/{kept_job}/audio", headers={"Range": "bytes=99999999-"})
    assert beyond.status_code == 416


def test_any_api_process_serves_a_kept_recording(client: httpx.Client, kept_job: str) -> None:
    """The job record says its upload is kept, so an API without the setting serves it too."""
    assert client.get(f"/v1/jobs/{kept_job}/audio").status_code == 200


def test_deleting_the_job_removes_its_kept_recording(
    keeping: httpx.Client, service_env: dict[str, str]
) -> None:
    job = submit(keeping, JFK)
    assert wait_for_job(keeping, job["id"])["status"] == "completed"
    assert len(upload_files(service_env, job["id"])) == 1
    assert keeping.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert upload_files(service_env, job["id"]) == []
    answer = keeping.get(f"/v1/jobs/{job['id']}/audio")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "job_not_found")


def test_without_keep_audio_the_upload_goes_and_audio_is_404(
    client: httpx.Client, service_env: dict[str, str]
) -> None:
    job = submit(client, JFK)
    assert wait_for_job(client, job["id"])["status"] == "completed"
    assert upload_files(service_env, job["id"]) == []
    answer = client.get(f"/v1/jobs/{job['id']}/audio")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "audio_not_kept"


def test_a_job_not_done_or_failed_is_409(
    keeping: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    store = JobStore.from_url(redis_url)
    job_id = new_job_id()  # a queued record that no message names: it stays queued
    store.create(job_id, "later.flac", JobOptions(), 1.0, tmp_path / "later.flac",
                 keep_upload=True)
    try:
        answer = keeping.get(f"/v1/jobs/{job_id}/audio")
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "job_not_ready")
        store.fail(job_id, DecodeError("No audio."), 60)
        answer = keeping.get(f"/v1/jobs/{job_id}/audio")
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "job_failed")
    finally:
        store.delete(job_id)


def test_an_unknown_job_is_404(keeping: httpx.Client) -> None:
    answer = keeping.get(f"/v1/jobs/{new_job_id()}/audio")
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "job_not_found")


SANDBOX = "sandbox; default-src 'none'"


def test_a_kept_recording_is_served_sandboxed(keeping: httpx.Client, kept_job: str) -> None:
    answer = keeping.get(f"/v1/jobs/{kept_job}/audio")
    assert answer.headers["content-security-policy"] == SANDBOX
    assert answer.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("name", "media_type", "served_name"), [
    ("clip.html", "audio/wav", "clip.wav"),
    ("clip.svg", "audio/wav", "clip.wav"),
    ("song.mp3", "audio/wav", "song.wav"),  # the name lies: the probed format wins
    ("noextension", "audio/wav", "noextension.wav"),
])  # fmt: skip
def test_the_content_type_comes_from_the_probed_format_never_the_name(
    keeping: httpx.Client, service_env: dict[str, str], tmp_path: Path,
    name: str, media_type: str, served_name: str,
) -> None:
    recording = write_scripted_wav(tmp_path / "clip.wav", "document.title = 'ran'")
    with recording.open("rb") as f:
        created = keeping.post("/v1/jobs", files={"file": (name, f, "text/html")})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert wait_for_job(keeping, job_id)["status"] == "completed"
    (stored,) = upload_files(service_env, job_id)
    assert stored.suffix in ("", ".wav", ".mp3")  # never .html or .svg
    answer = keeping.get(f"/v1/jobs/{job_id}/audio")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media_type
    assert answer.headers["content-security-policy"] == SANDBOX
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert f'filename="{served_name}"' in answer.headers["content-disposition"]
    assert answer.content == recording.read_bytes()
