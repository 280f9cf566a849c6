"""Webhooks through the real API, worker, I/O worker and a real receiver on loopback.

The session allows 127.0.0.1 (`VERBATIM_FETCH_ALLOW`) and retries 0.5, 1, 2, 4 s apart.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import httpx
import pytest
import redis
from receivers import Receiver, webhook_receiver
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from support import DATA, Process, keyed_client, submit, wait_for_job

from shared.config import Settings
from shared.localredis import free_port
from shared.priorities import NEW_JOB_PRIORITY
from shared.queue import TRANSCRIBE_TASK, make_celery
from shared.schemas import JobOptions
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import KeyStore
from shared.state.webhooks import signing_secret

SHORT = DATA / "LJ001-0001.flac"


@pytest.fixture
def secret(redis_client: redis.Redis, redis_url: str) -> str:
    """The deployment's secret, as `verbatim webhook-secret` prints it."""
    return signing_secret(redis_client, Settings(redis_url=redis_url))


def webhook_state(client: httpx.Client, job_id: str, attempts: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        state = job.get("webhook") or {}
        if state.get("attempts", 0) >= attempts or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def test_completed_event_is_signed_and_carries_the_job_not_the_transcript(
    client: httpx.Client, io_worker: Process, secret: str
) -> None:
    with webhook_receiver(Receiver()) as receiver:
        created = submit(client, SHORT, webhook_url=receiver.url,
                         metadata='{"customer": "acme", "ticket": 42}')
        job = wait_for_job(client, created["id"])
        (delivery,) = receiver.wait_for(1)
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.completed"
    assert event["data"]["id"] == job["id"]
    assert event["data"]["status"] == "completed"
    assert event["data"]["metadata"] == {"customer": "acme", "ticket": 42}
    assert event["data"]["links"]["srt"] == f"/v1/jobs/{job['id']}/transcript.srt"
    assert event["data"]["language"] == "en"
    assert "printing" not in delivery.body.decode().lower()  # the transcript's words
    assert delivery.headers["webhook-id"] == event["id"]
    with pytest.raises(WebhookVerificationError):  # a receiver refuses a forged body
        Webhook(secret).verify(delivery.body.replace(b"completed", b"failed"), delivery.headers)
    state = webhook_state(client, job["id"], 1)["webhook"]
    assert state["attempts"] == 1
    assert state["last_status"] == 200
    assert state["delivered_at"] is not None
    metrics = httpx.get(io_worker.metrics_url).text
    assert 'verbatim_webhook_events_total{outcome="delivered"}' in metrics


def test_500_twice_then_200_is_the_same_event_three_times(
    client: httpx.Client, io_worker: Process, secret: str
) -> None:
    with webhook_receiver(Receiver(statuses=[500, 500, 200])) as receiver:
        created = submit(client, SHORT, webhook_url=receiver.url)
        deliveries = receiver.wait_for(3)
        time.sleep(2)  # no fourth attempt after the 200
        assert len(receiver.received) == 3
    assert len({d.headers["webhook-id"] for d in deliveries}) == 1
    for delivery in deliveries:
        Webhook(secret).verify(delivery.body, delivery.headers)
    gaps = [b.at - a.at for a, b in itertools.pairwise(deliveries)]
    assert gaps[1] > gaps[0]  # backing off
    state = webhook_state(client, created["id"], 3)["webhook"]
    assert state["attempts"] == 3
    assert state["last_status"] == 200
    assert state["delivered_at"] is not None


def test_410_stops_the_retries(client: httpx.Client, io_worker: Process) -> None:
    with webhook_receiver(Receiver(statuses=[410, 200])) as receiver:
        created = submit(client, SHORT, webhook_url=receiver.url)
        receiver.wait_for(1)
        time.sleep(3)  # the retries would have come by now
        assert len(receiver.received) == 1
    state = webhook_state(client, created["id"], 1)["webhook"]
    assert state["last_status"] == 410
    assert state["delivered_at"] is None
    assert "410" in state["last_error"]


def test_a_receiver_down_past_the_first_retries_still_gets_the_event(
    client: httpx.Client, io_worker: Process, secret: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/verbatim"
    created = submit(client, SHORT, webhook_url=url)
    wait_for_job(client, created["id"])
    down = webhook_state(client, created["id"], 2)["webhook"]
    assert down["delivered_at"] is None
    assert "connection failed" in down["last_error"]
    with webhook_receiver(Receiver(), port=port) as receiver:
        (delivery,) = receiver.wait_for(1, timeout=30)
    Webhook(secret).verify(delivery.body, delivery.headers)
    state = webhook_state(client, created["id"], 3)["webhook"]
    assert state["attempts"] >= 3
    assert state["delivered_at"] is not None


def test_a_slow_receiver_never_delays_the_next_transcription(
    client: httpx.Client, io_worker: Process
) -> None:
    hold = threading.Event()
    with webhook_receiver(Receiver(hold=hold)) as receiver:
        first = submit(client, SHORT, webhook_url=receiver.url)
        wait_for_job(client, first["id"])
        receiver.wait_for(1)  # the delivery is now held open by the receiver
        second = wait_for_job(client, submit(client, SHORT)["id"])
        assert second["status"] == "completed"
        assert not receiver.answered.is_set()  # still holding the first job's delivery
        hold.set()


@pytest.mark.parametrize(("value", "code"), [
    ("not a url", "invalid_url"), ("ftp://127.0.0.1/x", "url_forbidden"),
    ("http://10.0.0.1/hook", "url_forbidden"), ("http://[::1]:9/hook", "url_forbidden"),
    ("http://localhost:9/hook", "url_forbidden"), ("http://169.254.169.254/", "url_forbidden"),
    ("http://" + "a" * 2100 + ".example/", "validation_error"),
])  # fmt: skip
def test_a_bad_webhook_url_is_refused_at_submission(
    client: httpx.Client, value: str, code: str
) -> None:
    with SHORT.open("rb") as f:
        response = client.post("/v1/jobs", files={"file": (SHORT.name, f)},
                               data={"webhook_url": value})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_the_generated_secret_is_kept(redis_client: redis.Redis, redis_url: str) -> None:
    settings = Settings(redis_url=redis_url)
    first = signing_secret(redis_client, settings)
    assert first.startswith("whsec_")
    assert signing_secret(redis_client, settings) == first
    assert json.dumps(first)  # plain text


def test_a_job_failed_in_the_worker_announces_job_failed(
    client: httpx.Client, io_worker: Process, service_env: dict[str, str], secret: str
) -> None:
    settings = Settings(redis_url=service_env["VERBATIM_REDIS_URL"],
                        data_dir=service_env["VERBATIM_DATA_DIR"])
    job_id = new_job_id()
    upload = settings.upload_dir / f"{job_id}.flac"
    upload.write_bytes(b"fLaC\x00\x00\x00\x22" + b"damaged" * 100)
    with webhook_receiver(Receiver()) as receiver:
        JobStore.from_url(settings.redis_url).create(
            job_id, "x.flac", JobOptions(), 11.0, upload, extra={"webhook_url": receiver.url})
        make_celery(settings).send_task(TRANSCRIBE_TASK, args=[job_id],
                                        priority=NEW_JOB_PRIORITY)
        (delivery,) = receiver.wait_for(1)
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.failed"
    assert event["data"]["error"]["code"] == "decode_error"
    assert webhook_state(client, job_id, 1)["webhook"]["delivered_at"] is not None


def test_a_keys_events_are_signed_with_its_own_secret_and_go_to_its_default_url(
    auth_api: tuple[Process, str], io_worker: Process, redis_client: redis.Redis, secret: str
) -> None:
    keys = KeyStore(redis_client)
    with webhook_receiver(Receiver()) as receiver:
        key, token = keys.create("hooks", webhook_url=receiver.url)
        with keyed_client(auth_api[1], token) as http:
            first = submit(http, SHORT)  # no webhook_url: the key's default
            wait_for_job(http, first["id"])
            (delivery,) = receiver.wait_for(1)
            key_secret = keys.webhook_secret(key.id)
            assert Webhook(key_secret).verify(delivery.body, delivery.headers)["data"]["id"] == (
                first["id"])
            with pytest.raises(WebhookVerificationError):  # not the deployment's secret
                Webhook(secret).verify(delivery.body, delivery.headers)
            rotated = keys.rotate_webhook_secret(key.id)
            assert rotated is not None
            second = submit(http, SHORT)
            wait_for_job(http, second["id"])
            _, delivery = receiver.wait_for(2)
    assert Webhook(rotated).verify(delivery.body, delivery.headers)["data"]["id"] == second["id"]
    with pytest.raises(WebhookVerificationError):
        Webhook(key_secret).verify(delivery.body, delivery.headers)


def test_a_job_delivered_too_often_announces_job_failed_once(
    client: httpx.Client, io_worker: Process, service_env: dict[str, str], secret: str
) -> None:
    settings = Settings(redis_url=service_env["VERBATIM_REDIS_URL"],
                        data_dir=service_env["VERBATIM_DATA_DIR"])
    job_id = new_job_id()
    upload = settings.upload_dir / f"{job_id}.flac"
    upload.write_bytes(SHORT.read_bytes())
    store = JobStore.from_url(settings.redis_url)
    with webhook_receiver(Receiver()) as receiver:
        store.create(job_id, "x.flac", JobOptions(), 11.0, upload,
                     extra={"webhook_url": receiver.url})
        # As if three workers had died running it: this delivery is the fourth.
        store.redis.hset(store.job_key(job_id), "attempts", settings.max_attempts)
        make_celery(settings).send_task(TRANSCRIBE_TASK, args=[job_id],
                                        priority=NEW_JOB_PRIORITY)
        (delivery,) = receiver.wait_for(1)
        time.sleep(2)  # no second event
        assert len(receiver.received) == 1
    event = Webhook(secret).verify(delivery.body, delivery.headers)
    assert event["type"] == "job.failed"
    assert event["data"]["error"]["code"] == "too_many_attempts"
