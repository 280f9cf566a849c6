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
while it holds the session and expires `live_lost_seconds` after it stops. `...:backlog` counts
the bytes of audio in `...:audio` (the API adds, the worker takes off).

`...:ended` is set by whoever ends the session, first (its worker, the reaper or the API).
`verbatim:live:held` is the set of sessions a worker claimed and has not ended: the reaper
(`worker/reaper.py`) ends those whose `alive` key lapsed, whether or not a client still
listens. `verbatim:live:owner:{key id}` holds a key's sessions, for
`live_max_sessions_per_key`; a member whose record is gone (its session ended) no longer counts.
"""

from __future__ import annotations

from typing import Literal

import redis
from pydantic import BaseModel

from shared.errors import LiveWorkerLost
from shared.schemas import JobOptions, Segment, Sound, Transcript
from shared.state.job_events import JobEvents
from shared.state.jobs import JobStore

LIVE_TASK = "verbatim.live"
# A live worker is started on this queue (`--queues live`); it then consumes, instead, the live
# queue of each model it serves (`live_queue_for`; `worker/celery_app.py`), so that a session
# only reaches a live worker that has its model.
LIVE_QUEUE = "live"
LIVE_MODEL_QUEUE_PREFIX = f"{LIVE_QUEUE}.model."
ENCODINGS = ("pcm_s16le", "webm_opus")
Encoding = Literal["pcm_s16le", "webm_opus"]

# Events on the session's stream, as the client receives them (`{"type": name, ...data}`).
STARTED, PARTIAL, FINAL, ERROR, DONE = "started", "partial", "final", "error", "done"
SOUND = "sound"  # a sound heard besides speech, once settled (a session that asks for sounds)
ENDS = frozenset({ERROR, DONE})

# Entries of the audio stream: a `kind` field, and `data` for audio.
KIND_FIELD, DATA_FIELD = b"kind", b"data"
AUDIO, STOP, ABORT = b"audio", b"stop", b"abort"

REFUSED = "-"  # the claim of a session no worker took in time
# How long a session's keys outlive its last write.
KEY_TTL_SECONDS = 3600
# Most frames the worker reads from the audio stream at once.
READ_FRAMES = 200
HELD_KEY = "verbatim:live:held"
_OWNER_PREFIX = "verbatim:live:owner:"

# KEYS: the owner's sessions, the new session's record. ARGV: most sessions, session id,
# record prefix, the record, its TTL. Writes the record and counts the session, unless the
# owner already holds as many sessions as it may (0); members whose record is gone are dropped.
_OPEN = """
for _, other in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[3] .. other) == 0 then redis.call('SREM', KEYS[1], other) end
end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class LiveSession(BaseModel):
    """What the worker needs to run a session; the API writes it before enqueueing."""

    id: str
    job_id: str
    encoding: Encoding
    sample_rate: int | None = None
    options: JobOptions


def live_queue_for(model: str) -> str:
    """The queue of the live sessions of `model`, a catalogue name."""
    return f"{LIVE_MODEL_QUEUE_PREFIX}{model}"


def is_live_queue(name: str) -> bool:
    """Whether a live worker consumes the queue `name`."""
    return name == LIVE_QUEUE or name.startswith(LIVE_MODEL_QUEUE_PREFIX)


def session_key(session_id: str, part: str = "") -> str:
    """The session's record (`part` empty) or one of its keys: audio, events, segments,
    claim, alive, language."""
    return f"verbatim:live:{session_id}" + (f":{part}" if part else "")


def transcript_of(segments: list[Segment], language: str | None, duration: float,
                  sounds: list[Sound] | None = None) -> Transcript:
    """The saved transcript of a session: its final segments, as confirmed, and the sounds
    heard where the session asked for them."""
    return Transcript(
        language=language,
        languages=[language] if language else [],
        duration=round(duration, 3),
        text="".join(segment.text for segment in segments).strip(),
        segments=segments,
        sounds=sounds,
    )


# KEYS: the session's claim, the held set. ARGV: worker id, TTL, session id. The claim and the
# hold in one step, so that no worker dies holding a session the reaper does not know of.
_CLAIM = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""


def claim(client: redis.Redis, session_id: str, worker: str) -> bool:
    """Whether `worker` took the session (else the API refused it, or another worker took
    it); from then on the reaper ends it should the worker die."""
    return bool(client.eval(_CLAIM, 2, session_key(session_id, "claim"), HELD_KEY, worker,
                            KEY_TTL_SECONDS, session_id))


def open_session(client: redis.Redis, session: LiveSession, owner: str | None,
                 most: int) -> bool:
    """Write the session's record, unless `owner` (a key id; None: auth is off, no limit)
    already holds `most` sessions (False)."""
    if owner is None:
        client.set(session_key(session.id), session.model_dump_json(), ex=KEY_TTL_SECONDS)
        return True
    return bool(client.eval(_OPEN, 2, _OWNER_PREFIX + owner, session_key(session.id), most,
                            session.id, session_key(""), session.model_dump_json(),
                            KEY_TTL_SECONDS))


def close_session(client: redis.Redis, session_id: str) -> None:
    """Forget an ended session: its record (so that its key's count drops), held mark, audio."""
    with client.pipeline() as pipe:
        pipe.srem(HELD_KEY, session_id)
        pipe.delete(session_key(session_id), session_key(session_id, "audio"),
                    session_key(session_id, "backlog"))
        pipe.execute()


def lost_sessions(client: redis.Redis) -> list[LiveSession]:
    """Sessions claimed by a worker whose `alive` key has lapsed."""
    lost = []
    members: set[bytes] = client.smembers(HELD_KEY)  # type: ignore[assignment]
    for member in members:
        session_id = member.decode()
        record, alive = client.mget(session_key(session_id), session_key(session_id, "alive"))
        if record is None:
            client.srem(HELD_KEY, session_id)
        elif alive is None:
            lost.append(LiveSession.model_validate_json(record))
    return lost


def save_confirmed(store: JobStore, session: LiveSession, ttl: int) -> Transcript | None:
    """Complete the session's job with the segments confirmed so far; the transcript when
    this call completed it, None when the job had ended already."""
    if not take_end(store.redis, session.id):
        return None
    raw: list[bytes] = store.redis.lrange(  # type: ignore[assignment]
        session_key(session.id, "segments"), 0, -1)
    language = store.redis.get(session_key(session.id, "language"))
    segments = [Segment.model_validate_json(item) for item in raw]
    transcript = transcript_of(segments, language.decode() if isinstance(language, bytes)
                               else None, segments[-1].end if segments else 0.0)
    store.update(session.job_id, audio_duration=transcript.duration)
    store.complete(session.job_id, transcript, ttl)
    return transcript


def take_end(client: redis.Redis, session_id: str) -> bool:
    """Whether the caller is the one to end the session (its worker at the session's end, or
    whoever finds that worker gone first): a session's job is completed, and announced, once."""
    return bool(client.set(session_key(session_id, "ended"), 1, nx=True, ex=KEY_TTL_SECONDS))


def end_lost(store: JobStore, session: LiveSession, ttl: int, events: JobEvents) -> bool:
    """End a session whose worker is gone: its job keeps the confirmed segments, its client
    (if still there) hears `live_worker_lost`; True when this call ended it."""
    transcript = save_confirmed(store, session, ttl)
    close_session(store.redis, session.id)
    if transcript is None:
        return False
    error = lost_error(session)
    events.log.publish(session_key(session.id, "events"), ERROR,
                {"code": error.code, "message": error.message}, KEY_TTL_SECONDS)
    events.completed(session.job_id, transcript)
    return True


def lost_error(session: LiveSession) -> LiveWorkerLost:
    return LiveWorkerLost("The live worker stopped; the text confirmed so far is saved as job "
                          f"{session.job_id}.")
