"""No key or secret in any log (issue 26, item 3): a whole stack with keys required (the API, a
worker, the I/O worker, a live worker, and nginx as shipped in front) is used the ways that put
a key or a secret in a URL: an upload, downloads and an event stream with `?access_token=`, a
URL job whose URL is signed, a webhook job, and a live session with `access_token`. Then every
log of the run is searched for the key, its secret part and the webhook and URL secrets."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import redis
from live_client import events_until_end, started_session, stop, ws_url
from receivers import Receiver, media_server, webhook_receiver
from sse_client import events
from support import DATA, Process, make_key, wait_for_job

from shared.state.keys import KeyStore

from .conftest import start_nginx

JFK = DATA / "jfk.flac"
SHORT = DATA / "LJ001-0001.flac"
URL_SECRET, CREDENTIAL, HOOK_SECRET = "sigXq81zvQpLm", "credR4kw9ZtTn", "hookP2vd7WsYe"


def test_no_secret_reaches_any_log(
    auth_api: tuple[Process, str], worker: Process, io_worker: Process, live_worker: Process,
    nginx_binary: str, redis_url: str, tmp_path: Path,
) -> None:
    api, api_url = auth_api
    proxy = start_nginx(nginx_binary, tmp_path, [api_url.removeprefix("http://")])
    key_id, token = make_key(redis_url, "logs")
    client = redis.Redis.from_url(redis_url)
    signing = KeyStore(client).webhook_secret(key_id)
    client.close()
    try:
        with httpx.Client(base_url=proxy.url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as http, \
                httpx.Client(base_url=proxy.url, timeout=60) as anonymous, \
                webhook_receiver(Receiver()) as receiver, \
                media_server({"lj.flac": SHORT}) as media:
            with JFK.open("rb") as f:
                created = http.post("/v1/jobs", files={"file": (JFK.name, f)}, data={
                    "webhook_url": f"{receiver.url}?hook={HOOK_SECRET}"})
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            signed = f"{media}/lj.flac?X-Amz-Signature={URL_SECRET}&X-Amz-Credential={CREDENTIAL}"
            fetched = http.post("/v1/jobs", json={"url": signed})
            assert fetched.status_code == 202, fetched.text
            assert wait_for_job(http, job_id)["status"] == "completed"
            assert wait_for_job(http, fetched.json()["id"])["status"] == "completed"
            receiver.wait_for(1)
            for fmt in ("txt", "srt"):
                download = anonymous.get(f"/v1/jobs/{job_id}/transcript.{fmt}",
                                         params={"access_token": token})
                assert download.status_code == 200
            followed = list(events(anonymous, job_id,
                                   path=f"/v1/jobs/{job_id}/events?access_token={token}"))
            assert followed[-1].name == "completed"
            with started_session(ws_url(proxy.url, token)) as (ws, _):
                stop(ws)
                assert events_until_end(ws)[-1][1]["type"] == "done"
    finally:
        proxy.process.stop()

    logs = {"API": api.output(), "worker": worker.output(), "I/O worker": io_worker.output(),
            "live worker": live_worker.output(),
            **{f"nginx {p.name}": p.read_text() for p in tmp_path.glob("*.log")},
            "nginx output": (tmp_path / "nginx.out").read_text()}
    # The lines that would have held them were written.
    assert '"WebSocket /v1/live?access_token=' in logs["API"]
    paths = [json.loads(line)["uri"] for line in logs["nginx access.log"].splitlines()]
    assert any(path.startswith(f"/v1/jobs/{job_id}/transcript.txt") for path in paths)
    assert any(path.startswith("/v1/live") for path in paths)
    secrets = {"the key": token, "the key's secret part": token.removeprefix("vb_"),
               "the webhook secret": signing,
               "the webhook secret's key": signing.removeprefix("whsec_"),
               "the media URL's signature": URL_SECRET, "its credential": CREDENTIAL,
               "the webhook URL's secret": HOOK_SECRET}
    found = [(what, where) for what, secret in secrets.items()
             for where, text in logs.items() if secret in text]
    assert found == [], found
