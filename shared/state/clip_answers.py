"""A worker's answer to an API request that waits on it: the labels of a clip handed over
for `POST /v1/audio/classify` (`api/classification.py` -> `worker/classification.py`).

The answer is one JSON entry on a list the request pops; it expires unread should the request
have given up."""

from __future__ import annotations

import json
from typing import Any

import redis

ANSWER_TTL_SECONDS = 120


def answer_key(request_id: str) -> str:
    return f"verbatim:classify:{request_id}"


def answer(client: redis.Redis, request_id: str, outcome: dict[str, Any]) -> None:
    """The worker's word on the request: `{"code": "ok", ...}` or a refusal's code and
    message."""
    with client.pipeline() as pipe:
        pipe.rpush(answer_key(request_id), json.dumps(outcome))
        pipe.expire(answer_key(request_id), ANSWER_TTL_SECONDS)
        pipe.execute()
