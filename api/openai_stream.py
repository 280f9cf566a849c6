"""OpenAI's transcription stream (`stream=true`): a job's segments as `transcript.text.delta`
events while it runs, then `transcript.text.done` with the whole text.

Event shapes follow https://platform.openai.com/docs/api-reference/audio/transcript-text-delta-event
(data-only SSE, each `data` a JSON object with its `type`); a job that fails ends the stream
with `{"error": {...}}`, which OpenAI's SDKs raise as `APIError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import ServerSentEvent

from api.deps import run_sync
from api.sse import JobStreams, Slot
from shared.state.job_events import COMPLETED, RESTART, SEGMENT
from shared.state.jobs import JobStore
from shared.state.relay import BEGINNING

DELTA, DONE = "transcript.text.delta", "transcript.text.done"
# A job's failure is the service's fault unless the input was (OpenAI's error `type`).
_INPUT_ERRORS = frozenset({"decode_error", "job_not_found"})


def _sse(data: dict[str, Any]) -> ServerSentEvent:
    """Data only, as OpenAI sends them: no `id:` either, since SSE parsers (OpenAI's SDKs
    among them) that saw one turn each later heartbeat comment into an empty event."""
    return ServerSentEvent(json.dumps(data, separators=(",", ":")))


async def transcript_events(
    streams: JobStreams, store: JobStore, job_id: str, slot: Slot | None = None
) -> AsyncIterator[ServerSentEvent]:
    """The job's text as OpenAI streams it. A job decoded again after a crash (`restart`) sends
    only the segments past the text already sent: a delta, once out, cannot be taken back, and
    `transcript.text.done` always carries the final text."""
    sent = 0  # segments already sent as deltas
    attempt_segments = 0
    async for event in streams.follow(job_id, BEGINNING, slot):
        if event.name == RESTART:
            attempt_segments = 0
        elif event.name == SEGMENT:
            attempt_segments += 1
            if attempt_segments > sent:
                sent = attempt_segments
                yield _sse({"type": DELTA, "delta": event.data["text"]})
        elif event.name == COMPLETED:
            transcript = await run_sync(store.get_transcript, job_id)
            text = transcript.text if transcript is not None else ""
            yield _sse({"type": DONE, "text": text})
        elif "error" in event.data:
            yield _sse({"error": _error(event.data["error"])})


def _error(error: dict[str, str]) -> dict[str, str | None]:
    kind = "invalid_request_error" if error["code"] in _INPUT_ERRORS else "server_error"
    return {"message": error["message"], "type": kind, "param": None, "code": error["code"]}
