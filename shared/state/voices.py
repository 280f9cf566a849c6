"""Enrolled voices (issue 21): the speaker embeddings a key has named, never the clips.

- `verbatim:voices:{owner}` -> a hash, name -> JSON `{"embedding": [...], "created_at": ...}`
  (`owner` is the key id, `_open` while auth is off). One key never reads another's hash, so
  its voices are neither listed nor matched in another key's jobs; revoking a key removes them.
- `verbatim:voices:job-{job id}` -> the same, for the voices one OpenAI-style request gives
  (`known_speaker_references[]`), kept as long as the job.
- `verbatim:enrolment:{id}` -> a list the worker pushes an enrolment's outcome onto, which the
  API waits on (`BLPOP`); it expires soon after.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import redis
from pydantic import BaseModel

# A name is what a transcript shows: letters, digits, spaces and a few marks, 1 to 40 long.
NAME = re.compile(r"^[\w][\w .'-]{0,39}$")
OPEN_OWNER = "_open"
RESULT_TTL_SECONDS = 120
ALL = "*"

# KEYS: the owner's hash. ARGV: name, record, the most voices, seconds to keep the hash (''
# for good). 1 stored, 0 at the limit (a name already there is replaced, which never passes
# the limit).
_ENROL = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and
   redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] ~= '' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


class Voice(BaseModel):
    """An enrolled voice as the API lists it (its embedding stays in Redis)."""

    name: str
    created_at: datetime


def job_scope(job_id: str) -> str:
    """The owner of the voices one request gave for its own job."""
    return f"job-{job_id}"


def voices_key(owner: str | None) -> str:
    return f"verbatim:voices:{owner or OPEN_OWNER}"


def result_key(enrolment_id: str) -> str:
    return f"verbatim:enrolment:{enrolment_id}"


class VoiceStore:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._enrol = client.register_script(_ENROL)

    def enrol(self, owner: str | None, name: str, embedding: list[float], most: int,
              ttl: int | None = None) -> bool:
        """Store the voice under `name` (replacing one of that name), for `ttl` seconds if
        given; False when the owner already has `most` others."""
        record = json.dumps({"embedding": embedding, "created_at": datetime.now(UTC).isoformat()})
        args: list[str | int] = [name, record, most, "" if ttl is None else ttl]
        return bool(self._enrol(keys=[voices_key(owner)], args=args))

    def names(self, owner: str | None) -> list[Voice]:
        raw: dict[Any, Any] = self.redis.hgetall(voices_key(owner))  # type: ignore[assignment]
        found = [Voice(name=_text(name), created_at=json.loads(value)["created_at"])
                 for name, value in raw.items()]
        return sorted(found, key=lambda voice: voice.name)

    def embeddings(self, owner: str | None, names: list[str] | None) -> dict[str, list[float]]:
        """The embeddings of the owner's voices named (None: all of them)."""
        raw: dict[Any, Any] = self.redis.hgetall(voices_key(owner))  # type: ignore[assignment]
        voices = {_text(name): json.loads(value)["embedding"] for name, value in raw.items()}
        return voices if names is None else {n: voices[n] for n in names if n in voices}

    def delete(self, owner: str | None, name: str) -> bool:
        return bool(self.redis.hdel(voices_key(owner), name))

    def delete_all(self, owner: str | None) -> None:
        self.redis.delete(voices_key(owner))

    def answer(self, enrolment_id: str, outcome: dict[str, str]) -> None:
        """The worker's word on an enrolment, for the API waiting on it."""
        key = result_key(enrolment_id)
        pipe = self.redis.pipeline()
        pipe.rpush(key, json.dumps(outcome))
        pipe.expire(key, RESULT_TTL_SECONDS)
        pipe.execute()


def known_names(text: str | None) -> list[str] | None:
    """`known_speakers` as a list of names; `*` (all of the key's) as None."""
    if text is None or text.strip() == ALL:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
