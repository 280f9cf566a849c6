"""API keys in Redis: random bearer tokens of which only a SHA-256 hash is ever stored.

- `verbatim:apikey:{sha256 of the token}` -> the key's id;
- `verbatim:apikeys:{id}` -> the key's record (a hash of JSON values: id, name, created, the
  limits, revoked);
- `verbatim:apikeys` -> the set of every key id (for `verbatim keys list`);
- `verbatim:apikeys:{id}:webhook_secret` -> the `whsec_` secret that signs the key's webhook
  events (kept apart from the record, so listing keys never shows it).

A token is `vb_` + 32 bytes of url-safe randomness, so it is recognisable in a leaked config file
and unguessable; its hash needs no salt or slow KDF for that reason. Every lookup reads Redis
(no cache), so a revoked key is refused on the next request on every API replica.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import UTC, datetime

import redis
import redis.asyncio
from pydantic import BaseModel, Field

from shared.state.records import json_object
from shared.state.voices import voices_key

TOKEN_PREFIX = "vb_"
WEBHOOK_SECRET_PREFIX = "whsec_"
IDS_KEY = "verbatim:apikeys"

# KEYS: the token's hash key. ARGV: the record key prefix. The record of the key the token
# belongs to, in one round trip (flat field/value list), or nil.
_LOOKUP = """
local id = redis.call('GET', KEYS[1])
if not id then return nil end
return redis.call('HGETALL', ARGV[1] .. id)
"""
# KEYS: the token's hash key, a hash the request reads. ARGV: the record key prefix. `_LOOKUP`'s
# answer (or false) and that hash (flat field/value lists), together in one round trip.
_LOOKUP_WITH = """
local id = redis.call('GET', KEYS[1])
local key = id and redis.call('HGETALL', ARGV[1] .. id) or false
return {key, redis.call('HGETALL', KEYS[2])}
"""


class KeyLimits(BaseModel):
    """What one key may do; None is no limit."""

    rate_per_minute: int | None = Field(default=None, ge=1)
    """Job creations per minute (a moving window)."""
    max_active_jobs: int | None = Field(default=None, ge=1)
    """Jobs queued or processing at once."""
    max_audio_hours_per_day: float | None = Field(default=None, gt=0)
    """Hours of audio submitted per UTC day."""


class ApiKey(BaseModel):
    """A key's record; the token itself is never part of it."""

    id: str
    name: str
    created: datetime
    limits: KeyLimits = KeyLimits()
    webhook_url: str | None = None
    """Where the key's jobs send their webhook events when a job names no `webhook_url`."""
    revoked: bool = False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def looks_like_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX) and 16 <= len(token) <= 128


class KeyStore:
    """Create, find, list and revoke API keys (synchronous, thread-safe)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._lookup = client.register_script(_LOOKUP)

    @staticmethod
    def hash_key(token: str) -> str:
        return f"verbatim:apikey:{token_hash(token)}"

    @staticmethod
    def record_key(key_id: str) -> str:
        return f"verbatim:apikeys:{key_id}"

    @staticmethod
    def secret_key(key_id: str) -> str:
        return f"verbatim:apikeys:{key_id}:webhook_secret"

    def create(
        self, name: str, limits: KeyLimits | None = None, webhook_url: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its token (shown once: it cannot be read back)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(id=secrets.token_hex(8), name=name, created=datetime.now(UTC),
                     limits=limits or KeyLimits(), webhook_url=webhook_url)
        with self.redis.pipeline() as pipe:  # MULTI: the record, its hash and the id together
            pipe.hset(self.record_key(key.id), mapping=_encode(key))  # type: ignore[arg-type]
            pipe.set(self.hash_key(token), key.id)
            pipe.sadd(IDS_KEY, key.id)
            pipe.set(self.secret_key(key.id), new_webhook_secret())
            pipe.execute()
        return key, token

    def webhook_secret(self, key_id: str) -> str:
        """The secret that signs the key's webhook events (made now for a key that has none)."""
        self.redis.set(self.secret_key(key_id), new_webhook_secret(), nx=True)
        stored: bytes = self.redis.get(self.secret_key(key_id))  # type: ignore[assignment]
        return stored.decode()

    def rotate_webhook_secret(self, key_id: str) -> str | None:
        """A new signing secret for the key, in use from the next delivery; None when there is
        no such key."""
        if not self.redis.exists(self.record_key(key_id)):
            return None
        secret = new_webhook_secret()
        self.redis.set(self.secret_key(key_id), secret)
        return secret

    def find(self, token: str) -> ApiKey | None:
        """The live (not revoked) key that `token` belongs to, else None."""
        if not looks_like_token(token):
            return None
        return _live(self._lookup(keys=[self.hash_key(token)], args=[self.record_key("")]))

    def get(self, key_id: str) -> ApiKey | None:
        raw: dict[bytes, bytes] = self.redis.hgetall(self.record_key(key_id))  # type: ignore[assignment]
        return _decode(raw) if raw else None

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        ids: set[bytes] = self.redis.smembers(IDS_KEY)  # type: ignore[assignment]
        keys = [key for key_id in ids if (key := self.get(key_id.decode()))]
        return sorted(keys, key=lambda key: key.created)

    def revoke(self, key_id: str) -> bool:
        """Refuse the key from now on; False when there is no such key."""
        if not self.redis.exists(self.record_key(key_id)):
            return False
        self.redis.hset(self.record_key(key_id), "revoked", "true")
        # Its enrolled voices go with it: no request can reach them again (issue 21).
        self.redis.delete(voices_key(key_id))
        return True


def _encode(key: ApiKey) -> dict[str, str]:
    return {name: json.dumps(value) for name, value in key.model_dump(mode="json").items()}


class KeyFinder:
    """`KeyStore.find` on an asyncio client, for the key lookup of every request."""

    def __init__(self, client: redis.asyncio.Redis) -> None:
        self._lookup = client.register_script(_LOOKUP)
        self._lookup_with = client.register_script(_LOOKUP_WITH)

    async def find(self, token: str) -> ApiKey | None:
        """As `KeyStore.find`."""
        if not looks_like_token(token):
            return None
        return _live(await self._lookup(
            keys=[KeyStore.hash_key(token)], args=[KeyStore.record_key("")]))

    async def find_with(self, token: str, record: str) -> tuple[ApiKey | None, dict[bytes, bytes]]:
        """As `find`, and the hash `record` read in the same round trip (empty when there is
        none): a request's key and the job it names cost one trip to Redis, not two."""
        if not looks_like_token(token):
            return None, {}
        flat_key, flat_record = await self._lookup_with(
            keys=[KeyStore.hash_key(token), record], args=[KeyStore.record_key("")])
        return _live(flat_key), dict(zip(flat_record[::2], flat_record[1::2], strict=True))


def _live(flat: list[bytes] | None) -> ApiKey | None:
    """The key of a `_LOOKUP` answer, unless there is none or it is revoked."""
    if not flat:
        return None
    key = ApiKey.model_validate_json(json_object(zip(flat[::2], flat[1::2], strict=True)))
    return None if key.revoked else key


def _decode(raw: dict[bytes, bytes]) -> ApiKey:
    return ApiKey.model_validate_json(json_object(raw.items()))
