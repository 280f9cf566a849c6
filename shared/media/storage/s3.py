"""The `s3` media store: uploads and windows as objects in one bucket of any S3-compatible store,
through boto3 (AWS's own SDK: request signing, retries, multipart uploads and the `AWS_*`
variables and config files as AWS documents them).

An upload streams in as a multipart upload of `s3_part_mib` parts, `s3_parts_in_flight` of them
sent at once, so the API holds at most one part more than that of it in memory, whatever its
size; it becomes an object under its job's key
(`uploads/{job_id}{ext}`) only when the last part is in, and a refused or broken-off upload is
deleted or aborted. Readers (the probe, the worker's decoder) see an object as a seekable file
that fetches `READ_BUFFER_BYTES` at a time with ranged GETs: nothing is spooled to disk.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from shared.errors import StorageSettingsError, StorageUnavailable
from shared.media.storage.names import UPLOAD_PREFIX, stored_name

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

MiB = 1024 * 1024
READ_BUFFER_BYTES = 4 * MiB
LIST_PAGE_KEYS = 1000
_REFUSED_CREDENTIALS = {"403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}
_NO_BUCKET = {"404", "NoSuchBucket"}


@contextmanager
def store_errors(doing: str) -> Iterator[None]:
    """Raise any failure of the store as `StorageUnavailable` (503 `storage_unavailable`)."""
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailable(f"The media store failed while {doing}; try again later.") \
            from exc


def _client(settings: Settings, sign_payload: bool) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=(settings.s3_secret_access_key.get_secret_value()
                               if settings.s3_secret_access_key else None),
        config=Config(
            s3={
                # Path-style addressing for an endpoint of one's own (MinIO, SeaweedFS,
                # Ceph...), whose bucket names are rarely host names; AWS's own otherwise.
                **({"addressing_style": "path"} if settings.s3_endpoint_url else {}),
                "payload_signing_enabled": sign_payload,
            },
            # No CRC32 of every part where the store does not ask for one (botocore computes
            # one by default since 1.36; several S3-compatible stores refuse it).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=5, read_timeout=60,
            retries={"mode": "standard", "max_attempts": 3},
            # Every upload's parts in flight, with room for reads and the sweep.
            max_pool_connections=max(10, 4 * settings.s3_parts_in_flight),
        ),
    )


class S3Store:
    """Media as objects in `VERBATIM_S3_BUCKET`: a location is an object key."""

    kind = "s3"

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket or ""
        self.endpoint = settings.s3_endpoint_url
        self.part_bytes = settings.s3_part_mib * MiB
        self.parts_in_flight = settings.s3_parts_in_flight
        # Over TLS, no SHA-256 of every part in its signature: TLS already guards the body,
        # as AWS's own SDKs reason. Over plain HTTP the signature keeps covering the body, so
        # that a captured request cannot be sent again with another.
        self.client = _client(settings, sign_payload=False)
        if not str(self.client.meta.endpoint_url).startswith("https://"):
            self.client = _client(settings, sign_payload=True)

    def prepare(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise `StorageSettingsError` naming the setting to fix unless the bucket answers."""
        where = self.endpoint or "AWS"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except NoCredentialsError:
            raise StorageSettingsError(
                "VERBATIM_S3_ACCESS_KEY_ID / VERBATIM_S3_SECRET_ACCESS_KEY: no credentials "
                "for the S3 store (set them, or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            ) from None
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NO_BUCKET:
                raise StorageSettingsError(
                    f"VERBATIM_S3_BUCKET: there is no bucket {self.bucket!r} at {where}"
                ) from None
            if code in _REFUSED_CREDENTIALS:
                raise StorageSettingsError(
                    "VERBATIM_S3_ACCESS_KEY_ID / VERBATIM_S3_SECRET_ACCESS_KEY: the S3 store at "
                    f"{where} refused the credentials for bucket {self.bucket!r} ({code})"
                ) from None
            raise StorageSettingsError(f"VERBATIM_S3_*: the S3 store at {where} answered "
                                       f"{code} for bucket {self.bucket!r}") from None
        except BotoCoreError as exc:
            raise StorageSettingsError(
                f"VERBATIM_S3_ENDPOINT_URL: the S3 store at {where} cannot be reached ({exc})"
            ) from None

    def ready(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True

    def upload_location(self, job_id: str, filename: str) -> str:
        return UPLOAD_PREFIX + stored_name(job_id, filename)

    def receive(self, location: str) -> S3Upload:
        return S3Upload(self, location)

    def resume(self, location: str) -> S3Upload:
        """Receive again what an earlier attempt began (its writer is gone: fetches are
        claimed one at a time); a multipart upload it left unfinished goes with the sweep."""
        return S3Upload(self, location)

    def source(self, location: str) -> S3Object:
        return S3Object(self, location)

    def exists(self, location: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=location)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in {"404", "NoSuchKey"}:
                return False
            raise StorageUnavailable("The media store failed while looking up an object.") \
                from exc
        except BotoCoreError as exc:
            raise StorageUnavailable("The media store failed while looking up an object.") \
                from exc
        return True

    def remove(self, location: str | None) -> None:
        if location:
            with store_errors("removing an object"):
                self.client.delete_object(Bucket=self.bucket, Key=location)

    def put_bytes(self, key: str, data: bytes) -> None:
        with store_errors("writing an object"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def get_bytes(self, key: str) -> bytes:
        with store_errors("reading an object"):
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (inclusive) of the object."""
        with store_errors("reading an object"):
            response = self.client.get_object(Bucket=self.bucket, Key=key,
                                              Range=f"bytes={start}-{end}")
            data: bytes = response["Body"].read()
        return data

    def size(self, key: str) -> int:
        with store_errors("looking up an object"):
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def listed(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        """(key, last modified) of the objects under `prefix`, a page of `LIST_PAGE_KEYS` keys
        per request: never the whole bucket in one call."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_KEYS})
        with store_errors("listing objects"):
            for page in pages:
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"]

    def unfinished(self, prefix: str) -> Iterator[tuple[str, str, datetime]]:
        """(key, upload id, started) of the multipart uploads under `prefix` never completed
        nor aborted (their API process died), a page at a time."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": LIST_PAGE_KEYS})
        with store_errors("listing uploads"):
            for page in pages:
                for item in page.get("Uploads", []):
                    yield item["Key"], item["UploadId"], item["Initiated"]

    def abort(self, key: str, upload_id: str) -> None:
        with store_errors("aborting an upload"):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def remove_prefix(self, prefix: str) -> None:
        """Remove every object under `prefix` (a job's windows), a page at a time."""
        batch: list[dict[str, str]] = []
        for key, _ in self.listed(prefix):
            batch.append({"Key": key})
            if len(batch) == LIST_PAGE_KEYS:
                self._delete(batch)
                batch = []
        if batch:
            self._delete(batch)

    def _delete(self, keys: list[dict[str, str]]) -> None:
        with store_errors("removing objects"):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})


class S3Upload:
    """An upload being received as a multipart upload; an object once `finish()`ed (so that
    the probe can read it), deleted again by `discard()`. Up to `s3_parts_in_flight` parts are
    sent at once while the next one is received, so that the API holds at most one more part
    than that, and receiving waits for the store only when the store is the slower."""

    def __init__(self, store: S3Store, key: str) -> None:
        self.store, self.location = store, key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._numbered = 0  # parts handed to the sender so far
        self._parts: list[dict[str, Any]] = []
        self._sender = ThreadPoolExecutor(max_workers=store.parts_in_flight,
                                          thread_name_prefix="s3-part")
        self._sending: deque[Future[None]] = deque()
        self._stored = False

    @property
    def source(self) -> S3Object:
        return S3Object(self.store, self.location)

    def write(self, data: bytes) -> None:
        self._buffer += data
        size = self.store.part_bytes
        while len(self._buffer) >= size:
            with memoryview(self._buffer) as view:
                part = bytes(view[:size])
            del self._buffer[:size]
            if len(self._sending) >= self.store.parts_in_flight:
                self._sending.popleft().result()  # the oldest is in, or its failure raised
            if self._upload_id is None:
                with store_errors("storing the upload"):
                    self._upload_id = self.store.client.create_multipart_upload(
                        Bucket=self.store.bucket, Key=self.location)["UploadId"]
            self._numbered += 1
            self._sending.append(self._sender.submit(self._send, part, self._numbered))

    def finish(self) -> None:
        client, bucket = self.store.client, self.store.bucket
        try:
            self._sent()
            with store_errors("storing the upload"):
                if self._upload_id is None:
                    client.put_object(Bucket=bucket, Key=self.location, Body=bytes(self._buffer))
                else:
                    if self._buffer or not self._parts:
                        self._numbered += 1
                        self._send(bytes(self._buffer), self._numbered)
                    parts = sorted(self._parts, key=lambda part: part["PartNumber"])
                    client.complete_multipart_upload(
                        Bucket=bucket, Key=self.location, UploadId=self._upload_id,
                        MultipartUpload={"Parts": parts})
                self._stored = True
        finally:
            self._buffer = bytearray()
            self._sender.shutdown(wait=False)

    def _sent(self) -> None:
        """Wait for every part in flight; raise the first failure."""
        failure: BaseException | None = None
        while self._sending:
            try:
                self._sending.popleft().result()
            except BaseException as exc:  # the others are waited for all the same
                failure = failure or exc
        if failure is not None:
            raise failure

    def commit(self) -> None:
        """Nothing to do: the object has had its job's key since `finish()`."""

    def discard(self) -> None:
        """Delete the object, or abort its multipart upload, in a thread of its own (callers
        include the event loop, and a store that is down takes its timeouts to say so); one
        that cannot be reached leaves it to the sweep."""
        self._buffer = bytearray()
        threading.Thread(target=self._discard, name="s3-discard", daemon=True).start()

    def _discard(self) -> None:
        try:
            with suppress(StorageUnavailable):
                self._sent()  # abort after the last parts, or they would outlive it
            self._sender.shutdown(wait=False)
            if self._stored:
                self.store.remove(self.location)
            elif self._upload_id is not None:
                self.store.abort(self.location, self._upload_id)
        except StorageUnavailable as exc:
            log.warning("upload left for the sweep: %s", exc, extra={"key": self.location})

    def _send(self, part: bytes, number: int) -> None:
        client, bucket = self.store.client, self.store.bucket
        with store_errors("storing the upload"):
            etag = client.upload_part(Bucket=bucket, Key=self.location, UploadId=self._upload_id,
                                      PartNumber=number, Body=part)["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})  # list.append is atomic


@dataclass(frozen=True)
class S3Object:
    """A stored object, opened as a seekable file for PyAV (`shared/media/opening.py`)."""

    store: S3Store
    key: str

    def open(self) -> IO[bytes]:
        return io.BufferedReader(_RangeReader(self.store, self.key), READ_BUFFER_BYTES)

    def __str__(self) -> str:
        return f"s3://{self.store.bucket}/{self.key}"


class _RangeReader(io.RawIOBase):
    """An object read with one ranged GET per buffer."""

    def __init__(self, store: S3Store, key: str) -> None:
        self.store, self.key = store, key
        self.length = store.size(key)
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readall(self) -> bytes:
        """The rest of the object, `READ_BUFFER_BYTES` per GET (not io's 8 KiB default)."""
        chunks = []
        while self.position < self.length:
            end = min(self.length, self.position + READ_BUFFER_BYTES) - 1
            chunks.append(self.store.get_range(self.key, self.position, end))
            self.position = end + 1
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self.length - self.position)
        if wanted <= 0:
            return 0
        data = self.store.get_range(self.key, self.position, self.position + wanted - 1)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

