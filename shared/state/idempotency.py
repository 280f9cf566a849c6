"""`Idempotency-Key`: the first request with a key creates the job; its repeats get that job.

A key is claimed with one `SET NX` of `verbatim:idem:{scope}:{key}` holding the request's
fingerprint and the job id it will create, for `idempotency_ttl_seconds`; of many identical
requests racing, one wins the claim and the others wait for its job. A request with the same
key but another fingerprint (another file, other options) is a conflict. A claim whose request
failed is released, so that the client's retry can create the job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis

from shared.errors import IdempotencyConflict

# KEYS: claim. ARGV: job id. Deletes the claim only while it is still that job's.
_RELEASE = """
local held = redis.call('GET', KEYS[1])
if held and cjson.decode(held)['job'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def scope(owner: str | None) -> str:
    """Whose keys these are: the caller's API key id, or the deployment's when auth is off."""
    return owner or "deployment"


def fingerprint(*parts: Any) -> str:
    """A digest of what makes two requests the same (route, file digest, fields)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    job_id: str
    created: bool
    """Whether the first request created its job (else it is still being handled)."""


class Idempotency:
    def __init__(self, client: redis.Redis, ttl_seconds: int) -> None:
        self.redis = client
        self.ttl = ttl_seconds
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def key(owner_scope: str, key: str) -> str:
        return f"verbatim:idem:{owner_scope}:{hashlib.sha256(key.encode()).hexdigest()}"

    def claim(self, owner_scope: str, key: str, digest: str, job_id: str) -> Claim | None:
        """None when this request now holds the key; else the first request's claim.
        `IdempotencyConflict` when that request was a different one."""
        name = self.key(owner_scope, key)
        value = json.dumps({"fp": digest, "job": job_id, "created": False})
        if self.redis.set(name, value, nx=True, ex=self.ttl):
            return None
        held = self.redis.get(name)
        if held is None:  # released between the two commands: try again
            return self.claim(owner_scope, key, digest, job_id)
        first = json.loads(held)
        if first["fp"] != digest:
            raise IdempotencyConflict(
                "This Idempotency-Key was used with a different request (another file or "
                "other options); use a new key for a new request."
            )
        return Claim(first["job"], bool(first["created"]))

    def created(self, owner_scope: str, key: str, digest: str, job_id: str) -> None:
        """Mark the claim's job as created (the claim keeps its expiry)."""
        value = json.dumps({"fp": digest, "job": job_id, "created": True})
        self.redis.set(self.key(owner_scope, key), value, xx=True, keepttl=True)

    def release(self, owner_scope: str, key: str, job_id: str) -> None:
        self._release(keys=[self.key(owner_scope, key)], args=[job_id])
