"""Live sessions (`WS /v1/live`): what the API and the live worker share about one.

A session is a Redis hash `verbatim:live:{id}` (its `LiveSession`, written by the API before
the worker is asked to take it) and three streams:

- `...:audio`: the client's frames, relayed by the API (`audio`, then `stop`; `abort` when the
  client went away or broke the protocol). The worker deletes what it has read, so the
  stream's length is the backlog the worker has yet to take in.
- `...:events`: what the worker publishes for the client (`partial`, `final`, then `done` or
  `error`), on the job events' relay (`shared/state/relay.py`), which the API follows.
- `...:segments`: each final segment as JSON, so that the API can save what was confirmed
  when the worker dies mid-session.

`...:claim` decides who owns the session: the first of the worker (its id) and the API (`-`,
once `live_claim_timeout_seconds` have passed) to set it. `...:alive` is kept by the worker
while it holds the session and expires `live_lost_seconds` after it stops.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from shared.schemas import JobOptions, Segment, Transcript

LIVE_TASK = "verbatim.live"
LIVE_QUEUE = "live"
ENCODINGS = ("pcm_s16le", "webm_opus")
Encoding = Literal["pcm_s16le", "webm_opus"]

# Events on the session's stream, as the client receives them (`{"type": name, ...data}`).
STARTED, PARTIAL, FINAL, ERROR, DONE = "started", "partial", "final", "error", "done"
ENDS = frozenset({ERROR, DONE})

# Entries of the audio stream: a `kind` field, and `data` for audio.
KIND_FIELD, DATA_FIELD = b"kind", b"data"
AUDIO, STOP, ABORT = b"audio", b"stop", b"abort"

REFUSED = "-"  # the claim of a session no worker took in time
# How long a session's keys outlive its last write.
KEY_TTL_SECONDS = 3600
# Most frames the worker reads from the audio stream at once.
READ_FRAMES = 200


class LiveSession(BaseModel):
    """What the worker needs to run a session; the API writes it before enqueueing."""

    id: str
    job_id: str
    encoding: Encoding
    sample_rate: int | None = None
    options: JobOptions


def session_key(session_id: str, part: str = "") -> str:
    """The session's record (`part` empty) or one of its keys: audio, events, segments,
    claim, alive, language."""
    return f"verbatim:live:{session_id}" + (f":{part}" if part else "")


def transcript_of(segments: list[Segment], language: str | None, duration: float) -> Transcript:
    """The saved transcript of a session: its final segments, as confirmed."""
    return Transcript(
        language=language,
        languages=[language] if language else [],
        duration=round(duration, 3),
        text="".join(segment.text for segment in segments).strip(),
        segments=segments,
    )
