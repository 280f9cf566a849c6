"""`GET /v1/jobs/{id}` is served by `api.routes.status` ahead of FastAPI's route, and answers
exactly as that route does: the same status, headers and bytes, key checks included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.routes.status import StatusRoute
from shared.config import Settings
from shared.errors import JobFailed
from shared.schemas import JobOptions, JobStatus, LanguageProbability
from shared.state.jobs import JobStore, new_job_id
from shared.state.keys import KeyStore


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/9", data_dir=tmp_path / "data",
                    auth="required")


def without_status_route(app: FastAPI) -> FastAPI:
    """The app as it was before the status route: FastAPI's `get_job` answers."""
    app.router.routes[:] = [r for r in app.router.routes if not isinstance(r, StatusRoute)]
    return app


def jobs(store: JobStore, owner: str, tmp: Path) -> list[str]:
    """Jobs of every shape a client polls: queued with extras, processing, failed, completed."""
    now = datetime.now(UTC)
    made = []
    for name in ("naïve \u2028 \"q\".wav", "x.mp3", "y.flac"):
        job_id = new_job_id()
        store.create(job_id, name, JobOptions(language="de", beam_size=3), 3.5, tmp / "u",
                     owner=owner, extra={"metadata": {"a": 1, "b": "é", "c": None, "d": 1.5},
                                         "webhook_url": "https://example.com/h"})
        made.append(job_id)
    store.update(made[1], status=JobStatus.processing, progress=0.4237, started_at=now)
    store.fail(made[1], JobFailed("decoder said no <é>"), 3600)
    store.update(made[2], status=JobStatus.completed, progress=1.0, finished_at=now,
                 language="en", languages=["en", "de"],
                 language_alternatives=[LanguageProbability(language="en", probability=0.9)],
                 webhook={"attempts": 2, "last_status": 500, "delivered_at": now})
    return made


def answer(client: TestClient, path: str, token: str | None) -> tuple[int, list[object], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get(path, headers=headers)
    kept = [(k, v) for k, v in response.headers.multi_items() if k not in ("date", "x-request-id")]
    assert response.headers["x-request-id"]
    return response.status_code, kept, response.content


@pytest.fixture
def db(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_the_status_route_answers_as_the_fastapi_route(
    settings: Settings, db: redis.Redis, tmp_path: Path
) -> None:
    keys = KeyStore(db)
    (mine, token), (_, other), (revoked, gone) = (keys.create(n) for n in ("a", "b", "c"))
    keys.revoke(revoked.id)
    own = jobs(JobStore(db), mine.id, tmp_path)
    paths = [f"/v1/jobs/{job_id}" for job_id in own] + [f"/v1/jobs/{new_job_id()}",
                                                       "/v1/jobs/not-an-id"]
    with TestClient(create_app(settings)) as fast, \
            TestClient(without_status_route(create_app(settings))) as before:
        for path in paths:
            for caller in (token, other, gone, "vb_unknown-token-xyz", None):
                assert answer(fast, path, caller) == answer(before, path, caller), (path, caller)
        # What a client checks: its own job, and the codes of the others.
        mine_now = fast.get(paths[0], headers={"Authorization": f"Bearer {token}"})
        assert mine_now.status_code == 200
        assert mine_now.json()["filename"] == "naïve \u2028 \"q\".wav"
        for caller, status, code in ((other, 404, "job_not_found"), (gone, 401, "unauthorized"),
                                     (None, 401, "unauthorized")):
            headers = {"Authorization": f"Bearer {caller}"} if caller else {}
            refused = fast.get(paths[0], headers=headers)
            assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)
        for method in ("HEAD", "POST"):  # only GET is the status route's: 405 as before
            assert fast.request(method, paths[0]).headers["allow"] == "DELETE, GET"


def test_the_status_route_comes_before_fastapis() -> None:
    routes = create_app(Settings(auth="required")).router.routes
    first = next(i for i, r in enumerate(routes) if getattr(r, "path", "") == "/v1/jobs/{job_id}"
                 or hasattr(r, "original_router"))
    assert isinstance(routes[first], StatusRoute)
