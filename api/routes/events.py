"""A job's events as they happen: `GET /v1/jobs/{id}/events` (server-sent events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse

from api.auth import QueryTokenIdentity, owner_of
from api.deps import QueryTokenJob
from api.errors import error_responses
from api.sse import JobStreamsDep, after_id, as_sse
from shared.errors import (
    InvalidRequest,
    JobNotFound,
    ServiceUnavailable,
    TooManyStreams,
    Unauthorized,
)
from shared.state.relay import STREAM_ID

router = APIRouter(prefix="/v1", tags=["jobs"])


_STREAM: dict[int | str, dict[str, Any]] = {200: {
    "description": "`text/event-stream`: `status`, `progress`, `segment`, `restart`, then "
                   "`completed`, `failed` or `deleted` (or `error`, `unauthorized`, once the "
                   "key is revoked); each event's `data` is JSON.",
    # Before OpenAPI 3.2 (`itemSchema`), a sequential media type's `schema` describes one event.
    "content": {"text/event-stream": {"schema": {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": STREAM_ID.pattern},
            "event": {"enum": ["status", "progress", "segment", "restart", "completed",
                               "failed", "deleted", "error"]},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
    }}},
}}
# An empty Last-Event-ID is no id at all: the stream starts from the beginning.
_LAST_EVENT_ID = f"^({STREAM_ID.pattern.strip('^$')})?$"


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    responses=_STREAM | error_responses(
        JobNotFound, InvalidRequest, ServiceUnavailable, Unauthorized, TooManyStreams
    ),
)
async def job_events(
    job: QueryTokenJob, key: QueryTokenIdentity, streams: JobStreamsDep,
    last_event_id: Annotated[str, Header(
        alias="Last-Event-ID", json_schema_extra={"pattern": _LAST_EVENT_ID},
        description="The id of the last event received: the stream resumes after it.",
    )] = "",
) -> EventSourceResponse:
    """Follow a job: its history first (after `Last-Event-ID`), then each event as it happens."""
    after = after_id(last_event_id)
    slot = await streams.admit(owner_of(key))
    return streams.response(as_sse(streams.follow(job.id, after, slot)))
