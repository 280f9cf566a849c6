"""The live session task: a live worker's pool process holds one session, start to end.

Live workers are Celery workers on live queues alone (`verbatim live-worker`, started by
`verbatim serve`), so a session never waits behind a batch job: started on `live`, each consumes
the live queue of each model it serves (`live.model.{name}`; `worker/celery_app.py`), so a
session reaches only a live worker that has its model. Each is one process with Celery's solo
pool: it holds one session at a time, in its main thread, with its models loaded and warmed up
as it starts. (A thread pool sharing one model, and prefork pool processes, were
measured first on the 2-core machine: each decode took three to five times as long as in the
solo worker, Celery's consumer loop competing with it in the thread pool's case.) The session's
audio arrives on its Redis stream (`shared/state/live_sessions.py`); what is decoded goes back on
its event stream, and every final segment also to the job's own events and to a list from which
the API saves the job should this worker die. When the session ends (stop, the client gone, a
limit) the confirmed segments are stored as the job's transcript: after `stop` all the audio is
decoded first; after `abort` (the client gone) what was heard last is settled as it stands.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import redis
from celery import Task

from shared.config import Settings, get_settings
from shared.errors import (
    BacklogExceeded,
    IdleTimeout,
    SessionTooLong,
    TranscriptionError,
    VerbatimError,
)
from shared.logs import bind
from shared.schemas import Segment, Sound
from shared.state.job_events import segment_data, transcript_links
from shared.state.jobs import JobStore, utcnow
from shared.state.live_sessions import (
    ABORT,
    AUDIO,
    DATA_FIELD,
    DONE,
    ERROR,
    FINAL,
    KEY_TTL_SECONDS,
    KIND_FIELD,
    LIVE_TASK,
    PARTIAL,
    READ_FRAMES,
    SOUND,
    STOP,
    LiveSession,
    claim,
    close_session,
    session_key,
    take_end,
    transcript_of,
)
from shared.state.relay import EventLog
from worker import metrics
from worker.celery_app import app
from worker.heartbeat import worker_id
from worker.job_state import charged, job_events, job_store
from worker.live_audio import LiveDecoder, decoder_for
from worker.live_decoder import StreamingTranscriber, Update, whisper_decode
from worker.live_sounds import LiveSounds
from worker.live_worker import session_done
from worker.model import entry_of, get_model
from worker.transcriber import sounds_on
from worker.webhooks import announce_end

log = logging.getLogger(__name__)

# Longest a read of the audio stream blocks while the session has nothing to decode.
READ_BLOCK_MS = 250


@app.task(name=LIVE_TASK, bind=True, acks_late=True, ignore_result=True)
def live_session(self: Task, session_id: str) -> None:
    """Hold one live session, unless the API already gave up waiting for a worker."""
    settings, store = get_settings(), job_store()
    client = store.redis
    with _alive(client, session_id, settings.live_lost_seconds):
        if not claim(client, session_id, worker_id()):
            log.info("live session skipped: refused before a slot was free",
                     extra={"event": "live_skipped", "session_id": session_id})
            return
        raw = client.get(session_key(session_id))
        if raw is None:
            close_session(client, session_id)
            return
        session = LiveSession.model_validate_json(raw)
        with bind(job_id=session.job_id, session_id=session_id), metrics.live_session():
            LiveRun(session, store, settings).run()
        session_done()


@contextmanager
def _alive(client: redis.Redis, session_id: str, lost_seconds: float) -> Iterator[None]:
    """Keep the session's `alive` key while the block runs (the API's test of this worker);
    it then expires on its own, after the session's last event is out."""
    key, stop = session_key(session_id, "alive"), threading.Event()

    def keep() -> None:
        with client.pipeline(transaction=False) as pipe:
            pipe.set(key, worker_id(), px=int(lost_seconds * 1000))
            pipe.expire(session_key(session_id), KEY_TTL_SECONDS)  # a session may outlast it
            pipe.execute()

    def beat() -> None:
        while not stop.wait(lost_seconds / 4):
            try:
                keep()
            except redis.RedisError as exc:
                log.warning("live session heartbeat failed: %s", exc)

    keep()  # before the claim: a claimed session is never seen without its `alive` key

    thread = threading.Thread(target=beat, name=f"live-{session_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class LiveRun:
    """One session's loop: read audio, decode in steps, publish, save."""

    def __init__(self, session: LiveSession, store: JobStore, settings: Settings) -> None:
        self.session = session
        self.store = store
        self.redis = store.redis
        self.settings = settings
        self.events = EventLog(store.redis, settings.events_max_length)
        self.segments: list[Segment] = []
        self._partial: str | None = None
        self._language: str | None = None
        self._last = "0-0"  # the last entry read from the audio stream
        # What is heard besides speech, where the session asks (issue 25); else None.
        self.sounds = LiveSounds() if sounds_on(session.options, settings) else None

    def run(self) -> None:
        options = self.session.options
        self.store.update(self.session.job_id, started_at=utcnow())
        model = get_model(self.settings, options.model)
        decode = whisper_decode(model, options.task, self.settings)
        _, entry = entry_of(self.settings, options.model)
        stream = StreamingTranscriber(decode, self.settings, options.fixed_language,
                                      options.word_timestamps, entry.live_step_seconds)
        log.info("live session started", extra={"event": "live_started"})
        error: VerbatimError | None = None
        try:
            error, aborted = self._loop(stream)
            self._publish(stream, stream.settle() if aborted else stream.finish())
        except VerbatimError as exc:
            error = exc
            self._publish(stream, stream.settle())
        except Exception:
            log.exception("unexpected error in a live session")
            error = TranscriptionError("Live transcription failed inside the worker.")
            self._publish(stream, stream.settle())
        self._settle_sounds()
        if self._save(stream):  # else the reaper found this worker gone and ended it
            if error is None:
                self._emit(DONE, {"job_id": self.session.job_id,
                                  "links": transcript_links(self.session.job_id)})
            else:
                self._emit(ERROR, {"code": error.code, "message": error.message})
            announce_end(self.session.job_id)
        close_session(self.redis, self.session.id)
        log.info("live session ended", extra={
            "event": "live_ended", "code": error.code if error else None,
            "audio_seconds": round(stream.stream_seconds, 3), "segments": len(self.segments)})

    def _loop(self, stream: StreamingTranscriber) -> tuple[VerbatimError | None, bool]:
        """Until the client stops or leaves (no error; True when it left) or a limit ends the
        session (its error)."""
        decoder = decoder_for(self.session.encoding, self.session.sample_rate)
        charge = charged(self.session.job_id)
        heard = time.monotonic()
        while True:
            # All the audio waiting is taken in before each decode, so that an `abort` behind
            # it is seen within one decode, and the backlog is measured in seconds.
            taken, end = self._take_in(stream, decoder, block=not stream.ready)
            if end is not None:
                return None, end == ABORT
            if self.redis.exists(session_key(self.session.id, "ended")):
                return None, True  # ended without this worker (taken for gone): stop decoding
            if taken or stream.ready:
                heard = time.monotonic()
            # Past the key's daily audio, the session ends with what came decoded.
            if taken and (over := charge(stream.stream_seconds)):
                return over, False
            if stream.backlog_seconds > self.settings.live_backlog_seconds:
                raise BacklogExceeded(
                    f"More than {self.settings.live_backlog_seconds:g} s of audio are waiting "
                    "to be transcribed; send it at most a little faster than real time.")
            if stream.stream_seconds > self.settings.live_max_session_seconds:
                return SessionTooLong(
                    f"A live session may last {self.settings.live_max_session_seconds:g} s "
                    "of audio; the transcript so far is kept."), False
            if time.monotonic() - heard > self.settings.live_idle_timeout_seconds:
                return IdleTimeout(
                    f"No audio arrived for {self.settings.live_idle_timeout_seconds:g} s; "
                    "the transcript so far is kept."), False
            if self.sounds is not None:
                self._emit_sounds(self.sounds.step())
            if stream.ready:
                self._publish(stream, stream.step())

    def _take_in(self, stream: StreamingTranscriber, decoder: LiveDecoder,
                 block: bool) -> tuple[bool, bytes | None]:
        """Decode what waits in the audio stream into `stream`: whether any arrived, and the
        `stop` or `abort` that ended it (None: the session goes on)."""
        taken = False
        while True:
            entries = self._read(block)
            block = False
            for entry_id, fields in entries:
                self._last = entry_id.decode()
                kind = fields.get(KIND_FIELD)
                if kind == AUDIO:
                    self._append(stream, decoder.feed(fields.get(DATA_FIELD, b"")))
                elif kind in (STOP, ABORT):
                    self._append(stream, decoder.close())
                    return True, kind
            taken = taken or bool(entries)
            if len(entries) < READ_FRAMES or (
                    stream.backlog_seconds > self.settings.live_backlog_seconds):
                return taken, None

    def _append(self, stream: StreamingTranscriber, samples: np.ndarray) -> None:
        stream.append(samples)
        if self.sounds is not None:
            self.sounds.append(samples)

    def _read(self, block: bool) -> list[tuple[bytes, dict[bytes, Any]]]:
        key = session_key(self.session.id, "audio")
        found: Any = self.redis.xread({key: self._last}, count=READ_FRAMES,
                                      block=READ_BLOCK_MS if block else None)
        entries = found[0][1] if found else []
        if entries:  # read once: what stays in the stream is the backlog
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.xdel(key, *[entry_id for entry_id, _ in entries])
                pipe.decrby(session_key(self.session.id, "backlog"),
                            sum(len(fields.get(DATA_FIELD, b"")) for _, fields in entries))
                pipe.execute()
        return entries  # type: ignore[no-any-return]

    def _publish(self, stream: StreamingTranscriber, update: Update) -> None:
        if stream.language and stream.language != self._language:
            self._language = stream.language
            self.redis.set(session_key(self.session.id, "language"), stream.language,
                           ex=KEY_TTL_SECONDS)
        for segment in update.finals:
            self.segments.append(segment)
            with self.redis.pipeline() as pipe:
                pipe.rpush(session_key(self.session.id, "segments"), segment.model_dump_json())
                pipe.expire(session_key(self.session.id, "segments"), KEY_TTL_SECONDS)
                pipe.execute()
            self._emit(FINAL, {"segment": segment_data(segment)})
            job_events().segment(self.session.job_id, segment)
        text = "".join(w.text for w in update.partial)
        if text != self._partial:
            self._partial = text
            start = update.partial[0].start if update.partial else stream.stream_seconds
            end = update.partial[-1].end if update.partial else stream.stream_seconds
            self._emit(PARTIAL, {"text": text, "start": round(start, 3), "end": round(end, 3)})

    def _emit_sounds(self, sounds: list[Sound]) -> None:
        for sound in sounds:
            self._emit(SOUND, {"sound": sound.model_dump(mode="json")})

    def _settle_sounds(self) -> None:
        """Classify the last of the audio and send the sounds still open, as the session
        ends; a classifier failure then costs the sounds, never the transcript."""
        if self.sounds is None:
            return
        try:
            self._emit_sounds(self.sounds.finish())
        except Exception:
            log.exception("the live session's last sounds could not be classified")

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        self.events.publish(session_key(self.session.id, "events"), name, data, KEY_TTL_SECONDS)

    def _save(self, stream: StreamingTranscriber) -> bool:
        """Store the confirmed segments as the job's transcript; False when the session had
        been ended already (its worker taken for gone: `shared/state/live_sessions.py`
        `end_lost`)."""
        if not take_end(self.redis, self.session.id):
            return False
        job_id = self.session.job_id
        transcript = transcript_of(self.segments, stream.language, stream.stream_seconds,
                                   self.sounds.heard() if self.sounds is not None else None)
        self.store.update(job_id, audio_duration=transcript.duration)
        if self.store.complete(job_id, transcript, self.settings.result_ttl_seconds):
            job_events().completed(job_id, transcript)
        return True
