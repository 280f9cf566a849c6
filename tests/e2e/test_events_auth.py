"""With API keys on, a job's event stream is its owner's, and takes the key as `access_token`
(an EventSource cannot send headers)."""

from __future__ import annotations

import httpx
from sse_client import events
from support import DATA, Process, make_key, submit


def test_the_owner_follows_with_access_token_and_no_one_else(
    auth_api: tuple[Process, str], redis_url: str
) -> None:
    url = auth_api[1]
    _, owner = make_key(redis_url, "owner")
    _, other = make_key(redis_url, "other")
    with httpx.Client(base_url=url, timeout=30,
                      headers={"Authorization": f"Bearer {owner}"}) as http:
        job = submit(http, DATA / "jfk.flac")
    path = f"/v1/jobs/{job['id']}/events"
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        followed = list(events(anonymous, job["id"], path=f"{path}?access_token={owner}"))
        assert followed[-1].name == "completed"
        assert any(event.name == "segment" for event in followed)
        refused = anonymous.get(path)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        hidden = anonymous.get(f"{path}?access_token={other}")
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "job_not_found"
