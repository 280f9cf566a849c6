"""One file through the service: upload, wait for the job, download and write its transcripts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.client import ApiError, Client, ServerUnreachable
from cli.outputs import write_atomic

POLL_SECONDS = 0.5
# A server restarting (or a network blip) while a job runs should not fail the file.
UNREACHABLE_GRACE_SECONDS = 30.0

Report = Callable[[str, float], None]
"""Told the phase (`uploading`, `queued`, `processing`, `downloading`) and its fraction done."""


@dataclass
class Request:
    source: Path
    label: str
    outputs: dict[str, Path]
    """The files to write, by format."""


def transcribe_file(
    client: Client, request: Request, fields: dict[str, str], report: Report
) -> float:
    """Write `request.outputs` and return the seconds of audio transcribed.

    Raises `ApiError` when the upload is refused or the job fails, `OSError` when a file
    cannot be read or written.
    """
    size = max(request.source.stat().st_size, 1)
    report("uploading", 0.0)
    job = client.submit(request.source, fields, lambda sent: report("uploading", sent / size))
    job = _wait(client, job, report)
    report("downloading", 1.0)
    # The json transcript is fetched even when not asked for: it carries the duration.
    transcript = client.download(job["id"], "json")
    for fmt, path in request.outputs.items():
        write_atomic(path, transcript if fmt == "json" else client.download(job["id"], fmt))
    return float(json.loads(transcript)["duration"])


def _wait(client: Client, job: dict[str, Any], report: Report) -> dict[str, Any]:
    """Poll until the job ends; a failed job raises its error."""
    unreachable_since: float | None = None
    while job["status"] not in ("completed", "failed"):
        report(job["status"], float(job["progress"]))
        time.sleep(POLL_SECONDS)
        try:
            job = client.status(job["id"])
            unreachable_since = None
        except ServerUnreachable:
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_GRACE_SECONDS:
                raise
    if job["status"] == "failed":
        error = job.get("error") or {"code": "job_failed", "message": "The job failed."}
        raise ApiError(str(error["code"]), str(error["message"]))
    return job
