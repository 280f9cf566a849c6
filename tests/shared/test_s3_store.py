"""The `s3` media store against a real S3-compatible server (SeaweedFS): streamed multipart
uploads, ranged reads, removal, the sweep, and start-up checks that name the bad setting."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from objectstore import SeaweedStore
from support import DATA

from shared.config import Settings
from shared.errors import StorageUnavailable
from shared.media.probe import probe_duration
from shared.media.storage import StorageSettingsError, media_store, window_prefix
from shared.media.storage import s3 as s3_module
from shared.media.storage.s3 import S3Store
from shared.media.sweep import sweep_objects
from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id


def _settings(seaweed: SeaweedStore, **changes: str) -> Settings:
    values = {key.removeprefix("VERBATIM_").lower(): value
              for key, value in seaweed.env().items()}
    return Settings.model_validate(values | changes)


@pytest.fixture(scope="module")
def store(seaweed: SeaweedStore) -> S3Store:
    found = media_store(_settings(seaweed))
    assert isinstance(found, S3Store)
    return found


@pytest.fixture
def jobs(redis_url: str) -> Iterator[JobStore]:
    job_store = JobStore.from_url(redis_url)
    yield job_store
    job_store.redis.close()


def _wait_gone(seaweed: SeaweedStore, prefix: str) -> None:
    """A discard runs in a thread of its own: poll until its object is gone."""
    deadline = time.monotonic() + 10
    while seaweed.keys(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seaweed.keys(prefix) == []


def test_a_large_upload_streams_in_parts_and_reads_back_by_ranges(
    store: S3Store, seaweed: SeaweedStore
) -> None:
    part = store.part_bytes
    data = os.urandom((store.parts_in_flight + 2) * part + 12345)
    upload = store.receive(store.upload_location(new_job_id(), "talk.wav"))
    for start in range(0, len(data), 1 << 20):
        upload.write(data[start:start + (1 << 20)])
        assert len(upload._buffer) < part, "one part at most is being received"
        assert len(upload._sending) <= store.parts_in_flight, "a bounded number is being sent"
    assert seaweed.keys(upload.location) == [], "no object before the upload is finished"
    upload.finish()
    assert upload.location.startswith("uploads/")
    assert upload.location.endswith(".wav")
    with upload.source.open() as file:
        assert file.read() == data
        file.seek(part - 10)
        assert file.read(20) == data[part - 10:part + 10]
    upload.discard()
    _wait_gone(seaweed, upload.location)


def test_an_upload_broken_off_leaves_no_object_and_no_unfinished_upload(
    store: S3Store, seaweed: SeaweedStore
) -> None:
    upload = store.receive(store.upload_location(new_job_id(), "talk.flac"))
    upload.write(os.urandom(store.part_bytes + 1))  # one part sent: a multipart upload is open
    assert list(store.unfinished(upload.location))
    upload.discard()
    deadline = time.monotonic() + 10
    while list(store.unfinished(upload.location)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(store.unfinished(upload.location)) == []
    assert seaweed.keys(upload.location) == []


def test_the_probe_reads_a_stored_recording(store: S3Store) -> None:
    upload = store.receive(store.upload_location(new_job_id(), "jfk.flac"))
    upload.write((DATA / "jfk.flac").read_bytes())
    upload.finish()
    assert probe_duration(upload.source) == pytest.approx(11.0, abs=0.1)
    store.remove(upload.location)


def test_windows_are_removed_a_page_at_a_time(
    store: S3Store, seaweed: SeaweedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = new_job_id()
    for index in range(5):
        store.put_bytes(f"{window_prefix(job_id)}{index}.npy", b"samples")
    assert store.get_bytes(f"{window_prefix(job_id)}3.npy") == b"samples"
    monkeypatch.setattr(s3_module, "LIST_PAGE_KEYS", 2)
    store.remove_prefix(window_prefix(job_id))
    assert seaweed.keys(window_prefix(job_id)) == []


def test_the_sweep_removes_what_no_job_owns_and_keeps_the_rest(
    store: S3Store, seaweed: SeaweedStore, jobs: JobStore
) -> None:
    owned, orphan = new_job_id(), new_job_id()
    owned_key = store.upload_location(owned, "a.flac")
    jobs.create(owned, "a.flac", JobOptions(), 1.0, owned_key)
    for job_id in (owned, orphan):
        store.put_bytes(store.upload_location(job_id, "a.flac"), b"media")
        store.put_bytes(f"{window_prefix(job_id)}0.npy", b"samples")
    unfinished = store.receive(store.upload_location(new_job_id(), "b.flac"))
    unfinished.write(os.urandom(store.part_bytes))  # its API process "died" here
    swept = sweep_objects(store, jobs.redis, grace_seconds=0)
    assert (swept.orphans, swept.abandoned) == (2, 1)
    assert seaweed.keys(f"uploads/{orphan}") == [] == seaweed.keys(window_prefix(orphan))
    assert seaweed.keys(owned_key) == [owned_key]
    assert seaweed.keys(window_prefix(owned)) == [f"{window_prefix(owned)}0.npy"]
    assert list(store.unfinished(unfinished.location)) == []
    kept = sweep_objects(store, jobs.redis, grace_seconds=3600)
    assert (kept.orphans, kept.abandoned) == (0, 0)
    jobs.delete(owned)
    assert sweep_objects(store, jobs.redis, grace_seconds=0).orphans == 2


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"s3_secret_access_key": "wrong"}, "VERBATIM_S3_ACCESS_KEY_ID"),
        ({"s3_bucket": "no-such-bucket"}, "VERBATIM_S3_BUCKET"),
        ({"s3_endpoint_url": "http://127.0.0.1:9"}, "VERBATIM_S3_ENDPOINT_URL"),
    ],
)
def test_bad_settings_fail_the_check_naming_the_setting(
    seaweed: SeaweedStore, changes: dict[str, str], named: str
) -> None:
    with pytest.raises(StorageSettingsError, match=named):
        media_store(_settings(seaweed, **changes)).check()


def test_a_store_that_is_down_is_storage_unavailable(tmp_path: Path, redis_url: str) -> None:
    down = SeaweedStore(tmp_path).start()
    store = media_store(_settings(down))
    assert isinstance(store, S3Store)
    assert store.ready()
    down.stop()
    assert not store.ready()
    upload = store.receive(store.upload_location(new_job_id(), "a.flac"))
    upload.write(b"x" * 10)
    with pytest.raises(StorageUnavailable):
        upload.finish()
    client = redis.Redis.from_url(redis_url)
    with pytest.raises(StorageUnavailable):
        sweep_objects(store, client, 0)


class _Sent(Exception):
    """Raised by a hook in place of sending the request."""


@pytest.mark.parametrize(("endpoint", "payload"), [
    ("http://127.0.0.1:9", hashlib.sha256(b"x" * 1024).hexdigest()),
    ("https://127.0.0.1:9", "UNSIGNED-PAYLOAD"),
])
def test_a_part_is_signed_over_plain_http_and_left_to_tls_over_https(
    endpoint: str, payload: str
) -> None:
    store = S3Store(Settings.model_validate({
        "storage": "s3", "s3_bucket": "media", "s3_endpoint_url": endpoint,
        "s3_region": "us-east-1", "s3_access_key_id": "key", "s3_secret_access_key": "secret"}))
    sent: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        sent.append(request.headers["X-Amz-Content-SHA256"].decode())
        raise _Sent

    store.client.meta.events.register("before-send.s3.UploadPart", capture)
    with pytest.raises(_Sent):
        store.client.upload_part(Bucket="media", Key="k", UploadId="u", PartNumber=1,
                                 Body=b"x" * 1024)
    assert sent == [payload]
