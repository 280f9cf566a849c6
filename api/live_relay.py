"""The API's side of live sessions (`WS /v1/live`): a relay, never a decoder.

The socket's `start` message makes the session's job (owned by the caller's key, counted as
one of its active jobs) and asks the live workers serving its model to take it (on the model's
live queue; a model that live workers are up but none serves is refused with
`model_unavailable`); a worker must claim it within `live_claim_timeout_seconds`, else the
client hears `no_live_worker` at once. Audio frames go to the session's Redis stream as they
come; the worker's events come back through the process's `EventHub` (the one multiplexed
XREAD that job events use), each sent on as a JSON text frame. A worker whose `alive` key
lapses is gone: the client gets `live_worker_lost` and the job is saved with the segments
confirmed so far (the reaper does the same when no client is left). See
`shared/state/live_sessions.py` for the keys.

Nothing a client sends is parsed before its key is checked, beyond a `start` message of at most
`START_MAX_CHARS`: a key in the header or `access_token` is checked first, one in `start` once
that small message is parsed; uvicorn refuses any frame over `live_max_frame_bytes` (`verbatim
api` and the API image start it with `--ws-max-size`). An open session's key is checked again
every `KEY_CHECK_SECONDS`: a revoked key's session ends with `unauthorized`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

import anyio
import redis.asyncio
from celery import Celery
from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import bearer_token, key_of_token, owner_of
from api.deps import run_sync
from api.model_choice import choose_live_model
from api.quotas import Quotas
from shared.config import Settings
from shared.errors import (
    BacklogExceeded,
    FrameTooLarge,
    IdleTimeout,
    InvalidMessage,
    InvalidOption,
    NoLiveWorker,
    TooManyLiveSessions,
    Unauthorized,
    UnsupportedEncoding,
    VerbatimError,
)
from shared.logs import bind
from shared.media.storage import media_store
from shared.schemas import JobOptions, JobStatus
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import ApiKey, KeyFinder
from shared.state.live_sessions import (
    ABORT,
    AUDIO,
    DATA_FIELD,
    ENCODINGS,
    ENDS,
    ERROR,
    KEY_TTL_SECONDS,
    KIND_FIELD,
    LIVE_TASK,
    REFUSED,
    STARTED,
    STOP,
    LiveSession,
    close_session,
    end_lost,
    live_queue_for,
    lost_error,
    open_session,
    session_key,
)
from shared.state.relay import BEGINNING, Event, EventHub
from shared.state.webhooks import Events

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8000, 48000
# How often a quiet session checks that its worker still holds it.
LOST_CHECK_SECONDS = 1.0
CLAIM_POLL_SECONDS = 0.05
# Longest a client may take to accept one event (a client that stops reading is dropped).
SEND_TIMEOUT_SECONDS = 10
# A session's task message is dropped by a live worker that receives it later than this.
TASK_EXPIRES_SECONDS = 60
FILENAME = "live"
# Longest `start` message (a few hundred characters at most are meaningful); a longer one is
# refused before it is parsed.
START_MAX_CHARS = 4096
# How often an open session's key is checked again (a revoked key's session then ends).
KEY_CHECK_SECONDS = 2.0


class StartMessage(BaseModel):
    """The client's first message."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["start"]
    encoding: str
    sample_rate: int | None = None
    language: str = Field(default="auto", max_length=20)
    task: Literal["transcribe", "translate"] = "transcribe"
    word_timestamps: bool = False
    sounds: bool | None = None
    model: str | None = Field(default=None, max_length=64)
    token: str | None = Field(default=None, max_length=128)


def parse_start(text: str) -> tuple[StartMessage, JobOptions]:
    """The `start` message and the job options it asks for; raises the error to send."""
    message = _json(text)
    if message.get("type") != "start":
        raise InvalidMessage("The first message must be {\"type\": \"start\", ...}.")
    try:
        start = StartMessage.model_validate(message)
    except ValidationError as exc:
        raise _start_error(exc) from exc
    if start.encoding not in ENCODINGS:
        raise UnsupportedEncoding(
            f"Encoding {start.encoding[:40]!r} is not one of {', '.join(ENCODINGS)}.")
    if start.encoding == "pcm_s16le" and not (
        start.sample_rate and MIN_RATE <= start.sample_rate <= MAX_RATE
    ):
        raise InvalidOption(f"pcm_s16le needs a sample_rate from {MIN_RATE} to {MAX_RATE}.")
    if "," in start.language:
        raise InvalidOption("A live session takes one language code, or auto.")
    try:
        options = JobOptions(language=start.language, task=start.task,
                             word_timestamps=start.word_timestamps, model=start.model,
                             sounds=start.sounds)
    except ValidationError as exc:
        raise InvalidOption(f"Unknown language {start.language!r}; use an ISO 639-1 code "
                            "or auto.") from exc
    return start, options


def _json(text: str) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage("Text messages must be JSON objects.") from exc
    if not isinstance(message, dict):
        raise InvalidMessage("Text messages must be JSON objects.")
    return message


def _start_error(exc: ValidationError) -> VerbatimError:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    if error["type"] == "extra_forbidden":
        return InvalidMessage(f"Unknown field {field!r} in the start message.")
    if field == "encoding":
        return UnsupportedEncoding("encoding must be a string: " + ", ".join(ENCODINGS) + ".")
    return InvalidOption(f"{field}: {error['msg']}.")


async def receive(websocket: WebSocket) -> str | bytes:
    """The next frame's text or bytes; raises `WebSocketDisconnect` when the client left."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("bytes") is not None:
        return bytes(message["bytes"])
    return str(message.get("text") or "")


async def send(websocket: WebSocket, name: str, data: dict[str, Any]) -> None:
    await asyncio.wait_for(websocket.send_text(json.dumps({"type": name, **data})),
                           SEND_TIMEOUT_SECONDS)


class LiveRelay:
    """Opens sessions and relays them (one per API process, on `app.state.live`)."""

    def __init__(self, settings: Settings, hub: EventHub, store: JobStore, quotas: Quotas,
                 celery: Celery, keys: KeyFinder) -> None:
        self.settings = settings
        self.hub = hub
        self.redis: redis.asyncio.Redis = hub.redis
        self.store = store
        self.quotas = quotas
        self.celery = celery
        self.keys = keys

    async def serve(self, websocket: WebSocket, access_token: str | None) -> None:
        """One session, from the handshake to the socket's close."""
        await websocket.accept()
        token = bearer_token(websocket) or access_token
        try:
            session, token = await self._open(websocket, token)
        except WebSocketDisconnect:
            return
        except VerbatimError as exc:
            await self._end(websocket, exc)
            return
        with bind(job_id=session.job_id, session_id=session.id):
            await send(websocket, STARTED, {"session_id": session.id, "job_id": session.job_id})
            await self._relay(websocket, session, token)

    async def _open(self, websocket: WebSocket,
                    token: str | None) -> tuple[LiveSession, str | None]:
        """The started session and the token of its key."""
        try:
            first = await asyncio.wait_for(receive(websocket),
                                           self.settings.live_idle_timeout_seconds)
        except TimeoutError as exc:
            raise IdleTimeout("No start message arrived.") from exc
        if isinstance(first, bytes):
            raise InvalidMessage("Audio came before the start message.")
        if len(first) > START_MAX_CHARS:
            raise FrameTooLarge(f"The start message may hold {START_MAX_CHARS} characters.")
        # Checked once the start message is in, so that a refused client always reads its
        # `error` after sending `start`, never finds the socket closed under it; a key sent
        # with the handshake before that message is parsed.
        key = await key_of_token(self.settings, self.keys, token) if token else None
        start, options = parse_start(first)
        if token is None:
            token = start.token
            key = await key_of_token(self.settings, self.keys, token)
        options = await choose_live_model(options, self.settings, self.store.redis)
        session = LiveSession(id=new_job_id(), job_id=new_job_id(), encoding=start.encoding,  # type: ignore[arg-type]
                              sample_rate=start.sample_rate, options=options)
        await self._create(session, key)
        if not await self._claimed(session.id):
            await run_sync(self.store.delete, session.job_id)
            await run_sync(close_session, self.store.redis, session.id)
            raise NoLiveWorker("No live worker is free to take the session; try again later.")
        return session, token

    async def _create(self, session: LiveSession, key: ApiKey | None) -> None:
        """The session's record (one of the key's live sessions), its job (one of the key's
        active jobs, with the key's webhook), its task."""
        await run_sync(self.quotas.admit, key)
        if not await run_sync(open_session, self.store.redis, session, owner_of(key),
                              self.settings.live_max_sessions_per_key):
            raise TooManyLiveSessions(
                f"This key already holds {self.settings.live_max_sessions_per_key} live "
                "sessions; end one first.")
        try:
            await run_sync(
                self.store.create, session.job_id, FILENAME, session.options, None,
                media_store(self.settings).upload_location(session.job_id, FILENAME),
                owner_of(key),
                key.limits if key else None, {"webhook_url": key.webhook_url} if key else None,
                status=JobStatus.processing,
            )
        except VerbatimError:
            await run_sync(close_session, self.store.redis, session.id)
            raise
        model = session.options.model or self.settings.default_model
        await run_sync(self.celery.send_task, LIVE_TASK, args=[session.id],
                       queue=live_queue_for(model), expires=TASK_EXPIRES_SECONDS)

    async def _claimed(self, session_id: str) -> bool:
        """Whether a worker claimed the session in time; if not, it is refused for good."""
        claim = session_key(session_id, "claim")
        deadline = anyio.current_time() + self.settings.live_claim_timeout_seconds
        while anyio.current_time() < deadline:
            if await self.redis.exists(claim):
                return True
            await asyncio.sleep(CLAIM_POLL_SECONDS)
        return not await self.redis.set(claim, REFUSED, nx=True, ex=KEY_TTL_SECONDS)

    async def _relay(self, websocket: WebSocket, session: LiveSession,
                     token: str | None) -> None:
        """Audio in and events out, until the session's last event or the client's end."""
        broken: list[VerbatimError] = []
        ended = anyio.Event()  # the worker's last event is out: nothing more to tell it

        async def abort() -> None:
            if not ended.is_set():
                await self._abort(session)

        async with anyio.create_task_group() as group:

            async def pump() -> None:
                try:
                    await self._audio(websocket, session)
                except VerbatimError as exc:
                    broken.append(exc)
                except (WebSocketDisconnect, RuntimeError):
                    log.info("live client gone", extra={"event": "live_client_gone"})
                await abort()
                group.cancel_scope.cancel()

            async def watch_key() -> None:
                await self._revoked(token)
                broken.append(Unauthorized("The API key has been revoked."))
                await abort()
                group.cancel_scope.cancel()

            group.start_soon(pump)
            if token is not None and self.settings.auth == "required":
                group.start_soon(watch_key)
            try:
                await self._events(websocket, session, ended, broken)
            except (TimeoutError, WebSocketDisconnect, RuntimeError):
                await abort()
            group.cancel_scope.cancel()
        if ended.is_set():  # audio relayed after the worker's end would wait an hour
            await self.redis.delete(session_key(session.id, "audio"),
                                    session_key(session.id, "backlog"))
        if broken:
            await self._end(websocket, broken[0])
            return
        await self._close(websocket)

    async def _audio(self, websocket: WebSocket, session: LiveSession) -> None:
        """Relay frames to the worker; returns only by raising (the client left or erred)."""
        stopped = False
        while True:
            frame = await receive(websocket)
            if isinstance(frame, str):
                if _json(frame).get("type") != "stop":
                    raise InvalidMessage("After start, the only text message is "
                                         "{\"type\": \"stop\"}.")
                if not stopped:
                    await self._push(session, STOP)
                stopped = True
            elif len(frame) > self.settings.live_max_frame_bytes:
                raise FrameTooLarge(f"Audio frames may hold {self.settings.live_max_frame_bytes}"
                                    f" bytes; this one held {len(frame)}.")
            elif not stopped:
                frames, size = await self._push(session, AUDIO, frame)
                if (frames > self.settings.live_backlog_frames
                        or size > self.settings.live_backlog_bytes):
                    raise BacklogExceeded("Audio arrives much faster than it is transcribed; "
                                          "send it at most a little faster than real time.")

    async def _push(self, session: LiveSession, kind: bytes,
                    data: bytes = b"") -> tuple[int, int]:
        """Append to the session's audio stream; the worker's backlog in frames and bytes."""
        key, backlog = session_key(session.id, "audio"), session_key(session.id, "backlog")
        async with self.redis.pipeline(transaction=False) as pipe:
            fields = {KIND_FIELD: kind, DATA_FIELD: data} if data else {KIND_FIELD: kind}
            pipe.xadd(key, fields)  # type: ignore[arg-type]
            pipe.expire(key, KEY_TTL_SECONDS)
            pipe.xlen(key)
            pipe.incrby(backlog, len(data))
            pipe.expire(backlog, KEY_TTL_SECONDS)
            _, _, frames, size, _ = await pipe.execute()
        return int(frames), int(size)

    async def _abort(self, session: LiveSession) -> None:
        """Tell the worker the client is gone, dropping the audio it has not read yet: it
        stops within one decode instead of working through a backlog nobody will hear."""
        key = session_key(session.id, "audio")
        async with self.redis.pipeline(transaction=True) as pipe:
            # Trimmed rather than deleted: the stream keeps its last id, so `abort` gets a
            # later one and the worker reads it.
            pipe.xtrim(key, maxlen=0, approximate=False)
            pipe.xadd(key, {KIND_FIELD: ABORT})
            pipe.expire(key, KEY_TTL_SECONDS)
            pipe.delete(session_key(session.id, "backlog"))
            await pipe.execute()

    async def _revoked(self, token: str | None) -> None:
        """Returns once the key of `token` is revoked (or deleted)."""
        while True:
            await asyncio.sleep(KEY_CHECK_SECONDS)
            if token is None or await self.keys.find(token) is None:
                return

    async def _events(self, websocket: WebSocket, session: LiveSession,
                      ended: anyio.Event, broken: list[VerbatimError]) -> None:
        """The worker's events to the client, until its last; none once the client's side has
        broken the session (`broken`): the worker's `done` for the abort may come before this
        task is cancelled, and the client is owed the error, not `done`."""

        async def lost(last: str) -> Event | None:
            return await self._lost(session, last)

        async for event in self.hub.follow(session_key(session.id, "events"), BEGINNING, ENDS,
                                           lost, LOST_CHECK_SECONDS):
            if event.name in ENDS:
                ended.set()
            if broken:
                return
            await send(websocket, event.name, event.data)
            if event.name in ENDS:
                return

    async def _lost(self, session: LiveSession, last: str) -> Event | None:
        """The session's end when its worker stopped keeping it alive, else None."""
        if await self.redis.exists(session_key(session.id, "alive")):
            return None
        log.warning("live worker lost", extra={"event": "live_worker_lost"})
        await run_sync(self._end_lost, session)
        error = lost_error(session)
        return Event(last, ERROR, {"code": error.code, "message": error.message})

    def _end_lost(self, session: LiveSession) -> None:
        """As the reaper does (`worker/reaper.py`), unless it (or the worker) came first."""
        events = JobEvents.on(self.store.redis, self.settings)
        if end_lost(self.store, session, self.settings.result_ttl_seconds, events):
            Events(self.store, self.settings).announce(session.job_id)

    async def _end(self, websocket: WebSocket, error: VerbatimError) -> None:
        try:
            await send(websocket, ERROR, {"code": error.code, "message": error.message})
        except (TimeoutError, WebSocketDisconnect, RuntimeError):
            return
        await self._close(websocket)

    @staticmethod
    async def _close(websocket: WebSocket) -> None:
        try:
            await websocket.close()
        except (RuntimeError, WebSocketDisconnect):
            pass  # already closed by the client
