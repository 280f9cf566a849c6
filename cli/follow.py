"""`verbatim transcribe --follow`: each segment printed as the worker decodes it.

Reads the job's server-sent events; a lost stream is taken up again after the last event
seen (`Last-Event-ID`), so no segment is printed twice or skipped.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from cli.client import ApiError, Client

FINAL = frozenset({"completed", "failed", "deleted"})
RECONNECT_SECONDS = 1.0
# Within this long of the first failure, a lost stream is taken up again.
GRACE_SECONDS = 30.0


def timestamp(seconds: float) -> str:
    """`h:mm:ss.mmm` (`mm:ss.mmm` under an hour), in whole milliseconds."""
    ms = round(seconds * 1000)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    clock = f"{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"
    return f"{hours}:{clock}" if hours else clock


def segment_line(segment: dict[str, Any]) -> str:
    return f"[{timestamp(segment['start'])} --> {timestamp(segment['end'])}] " \
           f"{segment['text'].strip()}"


def follow(
    client: Client, job_id: str, report: Any, out: TextIO | None = None
) -> None:
    """Print the job's segments to `out` (stdout) until it ends; `report(phase, fraction)`
    is told its progress. The caller reads the finished job's record afterwards."""
    out = out or sys.stdout
    last: str | None = None
    failing_since: float | None = None
    while True:
        try:
            for event_id, name, data in client.events(job_id, last):
                last, failing_since = event_id, None
                _show(name, data, report, out)
                if name in FINAL:
                    return
        except ApiError as exc:
            failing_since = failing_since or time.monotonic()
            if not exc.transient or time.monotonic() - failing_since > GRACE_SECONDS:
                raise
        time.sleep(RECONNECT_SECONDS)


def _show(name: str, data: dict[str, Any], report: Any, out: TextIO) -> None:
    if name == "segment":
        print(segment_line(data), file=out, flush=True)
    elif name == "progress":
        report("processing", float(data["progress"]))
    elif name == "status":
        report(str(data["status"]), 0.0)
    elif name == "restart":  # the job is decoded again from its start after a crash
        print(f"-- decoding again from the start (attempt {data['attempt']}) --",
              file=out, flush=True)
