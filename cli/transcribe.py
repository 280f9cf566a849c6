"""One file through the service: upload, wait for the job, download and write its transcripts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from cli.client import ApiError, Client
from cli.follow import follow
from cli.outputs import write_atomic

POLL_SECONDS = 0.5
# A server restarting, a proxy with no API replica behind it for a moment, or the API
# answering 503 while Redis blips should not fail the file: such failures are retried
# for this long, backing off from the first pause up to the longest.
UNREACHABLE_GRACE_SECONDS = 30.0
UPLOAD_RETRY_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 8.0

T = TypeVar("T")

Report = Callable[[str, float], None]
"""Told the phase (`uploading`, `queued`, `processing`, `downloading`) and its fraction done."""


@dataclass
class Request:
    source: Path
    label: str
    outputs: dict[str, Path]
    """The files to write, by format."""
    follow: bool = False
    """Print each segment as it is decoded (`cli/follow.py`) instead of polling."""


def transcribe_file(
    client: Client, request: Request, fields: dict[str, str], report: Report
) -> float:
    """Write `request.outputs` and return the seconds of audio transcribed.

    Raises `ApiError` when the upload is refused, the job fails or the server stays down
    past the grace period, `OSError` when a file cannot be read or written.
    """
    upload = partial(_upload, client, request, fields, report)
    job = _ride_out(upload, UPLOAD_RETRY_SECONDS, resend_only=True)
    try:
        if request.follow:
            follow(client, job["id"], report)
            job = _ride_out(partial(client.status, job["id"]), POLL_SECONDS)
        job = _wait(client, job, report)
        report("downloading", 1.0)
        # The json transcript is fetched even when not asked for: it carries the duration.
        transcript = _download(client, job["id"], "json")
        for fmt, path in request.outputs.items():
            write_atomic(path, transcript if fmt == "json" else _download(client, job["id"], fmt))
        return _duration(transcript)
    finally:
        client.settle(job["id"])


def _upload(
    client: Client, request: Request, fields: dict[str, str], report: Report
) -> dict[str, Any]:
    """One upload from the start of the file."""
    size = max(request.source.stat().st_size, 1)
    report("uploading", 0.0)
    return client.submit(request.source, fields, lambda sent: report("uploading", sent / size))


def _wait(client: Client, job: dict[str, Any], report: Report) -> dict[str, Any]:
    """Poll until the job ends; a failed job raises its error."""
    while job["status"] not in ("completed", "failed"):
        report(job["status"], float(job["progress"]))
        time.sleep(POLL_SECONDS)
        job = _ride_out(partial(client.status, job["id"]), POLL_SECONDS)
    if job["status"] == "failed":
        error = job.get("error") or {"code": "job_failed", "message": "The job failed."}
        raise ApiError(str(error["code"]), str(error["message"]))
    return job


def _download(client: Client, job_id: str, fmt: str) -> bytes:
    return _ride_out(partial(client.download, job_id, fmt), POLL_SECONDS)


def _ride_out(call: Callable[[], T], pause: float, resend_only: bool = False) -> T:
    """`call()`, tried again after a transient failure (see `ApiError.transient`; with
    `resend_only`, `ApiError.resendable`) until `UNREACHABLE_GRACE_SECONDS` have passed since
    the first; any other failure raises."""
    failing_since: float | None = None
    while True:
        try:
            return call()
        except ApiError as exc:
            failing_since = failing_since or time.monotonic()
            retry = exc.resendable if resend_only else exc.transient
            if not retry or time.monotonic() - failing_since > UNREACHABLE_GRACE_SECONDS:
                raise
        time.sleep(pause)
        pause = min(pause * 2, LONGEST_PAUSE_SECONDS)


def _duration(transcript: bytes) -> float:
    """The seconds of audio that the json transcript covers."""
    try:
        return float(json.loads(transcript)["duration"])
    except (ValueError, KeyError, TypeError):
        message = f"the transcript the server sent is not Verbatim's JSON: {transcript[:80]!r}"
        raise ApiError("bad_response", message) from None
