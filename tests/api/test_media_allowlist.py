"""Uploads that would make FFmpeg open a second resource are refused with 415 and leave nothing
behind; a real recording of every kind the service lists is accepted.

The real app in-process on a Redis database of its own that no worker consumes: accepted jobs
stay queued, so what the probe made of each upload can be read back."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from media_samples import KINDS, SPEECH_SECONDS, external_track, hostile_files
from support import DATA

from shared.config import Settings
from shared.queue import queue_depth

TARGET = (DATA / "jfk.flac").resolve()  # a file the service can read


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/11", data_dir=tmp_path / "data")


def stored_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.upload_dir.glob("*"))


@pytest.mark.parametrize("name", list(hostile_files(TARGET)))
def test_a_file_naming_another_resource_is_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis, name: str
) -> None:
    response = api.post("/v1/jobs", files={"file": (name, hostile_files(TARGET)[name])})
    assert (response.status_code, response.json()["error"]["code"]) == (415, "unsupported_media")
    assert stored_files(settings) == []
    assert queue_depth(queue_db) == 0
    assert list(queue_db.scan_iter("verbatim:*")) == []


def test_the_openai_route_refuses_a_playlist_too(
    api: TestClient, settings: Settings, queue_db: redis.Redis
) -> None:
    playlist = hostile_files(TARGET)["bare.m3u8"]
    response = api.post("/v1/audio/transcriptions", files={"file": ("x.m3u8", playlist)},
                        data={"model": "whisper-1"})
    assert (response.status_code, response.json()["error"]["code"]) == (415, "unsupported_media")
    assert stored_files(settings) == []
    assert queue_depth(queue_db) == 0


def test_a_track_kept_in_another_jobs_upload_is_refused(
    api: TestClient, settings: Settings, queue_db: redis.Redis, media_samples: dict[str, Path]
) -> None:
    m4a = media_samples["m4a"].read_bytes()
    first = api.post("/v1/jobs", files={"file": ("talk.m4a", m4a)}).json()["id"]
    [sibling] = stored_files(settings)
    assert sibling == f"{first}.m4a"
    response = api.post("/v1/jobs", files={"file": ("ref.m4a", external_track(m4a, sibling))})
    assert (response.status_code, response.json()["error"]["code"]) == (415, "unsupported_media")
    assert stored_files(settings) == [sibling]
    assert queue_depth(queue_db) == 1


@pytest.mark.parametrize("extension", [kind.extension for kind in KINDS])
def test_a_real_recording_of_every_listed_kind_is_accepted(
    api: TestClient, settings: Settings, queue_db: redis.Redis,
    media_samples: dict[str, Path], extension: str,
) -> None:
    path = media_samples[extension]
    response = api.post("/v1/jobs", files={"file": (f"talk.{extension}", path.read_bytes())})
    assert response.status_code == 202, response.text
    job = response.json()
    # As the container declares it (MPEG program streams estimate it from the bit rate).
    assert job["audio_duration"] == pytest.approx(SPEECH_SECONDS, abs=0.5)
    assert stored_files(settings) == [f"{job['id']}.{extension}"]
    assert queue_depth(queue_db) == 1
