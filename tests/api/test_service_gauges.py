"""The gauges an API scrape reads from the service around it: whether Redis answers and the
upload directory takes a write (what the Redis and storage alerts watch), the queue by
model and priority, the workers ready, on a real Redis (a database of its own) and directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import render
from shared.config import Settings
from shared.localredis import free_port
from shared.queue import make_celery, queue_for
from shared.state.heartbeats import Heartbeats
from shared.state.jobs import JobStore

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(store: JobStore, settings: Settings) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(render(store, settings).decode())
        for sample in family.samples if sample.name.startswith("verbatim_")
    }


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    settings = Settings(redis_url=redis_url.rsplit("/", 1)[0] + "/15", data_dir=tmp_path)
    settings.upload_dir.mkdir(parents=True)
    return settings


@pytest.fixture
def store(settings: Settings) -> Iterator[JobStore]:
    store = JobStore.from_url(settings.redis_url)
    store.redis.flushdb()
    yield store
    store.redis.flushdb()
    store.redis.close()


def test_a_healthy_service(store: JobStore, settings: Settings) -> None:
    celery = make_celery(settings)
    try:
        # Messages as the API sends them, no worker to take them.
        for model, priority in (("base", 1), ("base", 1), ("base", 4), ("tiny.en", 2)):
            celery.send_task("verbatim.transcribe", args=["0" * 32], queue=queue_for(model),
                             priority=priority)
    finally:
        celery.close()
    beats = Heartbeats(store.redis)
    for pid in (11, 12):
        beats.beat(f"host:{pid}", 30, hostname="host", pid=pid, model="base", device="cpu",
                   compute_type="int8", jobs_done=0)
    found = scrape(store, settings)
    assert found[("verbatim_redis_up", ())] == 1
    assert found[("verbatim_storage_up", ())] == 1
    assert found[("verbatim_workers_ready", ())] == 2
    depths = {(dict(labels)["model"], dict(labels)["priority"]): value
              for (name, labels), value in found.items() if name == "verbatim_queue_depth"}
    queued = {("base", 1): 2, ("base", 4): 1, ("tiny.en", 2): 1}
    assert depths == {(model, str(p)): queued.get((model, p), 0)
                      for model in ("base", "tiny.en") for p in range(10)}


def test_an_upload_directory_that_is_gone_is_storage_down(
    store: JobStore, settings: Settings
) -> None:
    shutil.rmtree(settings.upload_dir)
    found = scrape(store, settings)
    assert found[("verbatim_storage_up", ())] == 0
    assert found[("verbatim_redis_up", ())] == 1
    settings.upload_dir.mkdir()
    assert scrape(store, settings)[("verbatim_storage_up", ())] == 1
    assert not list(settings.upload_dir.iterdir()), "the probe leaves nothing behind"


def test_a_redis_that_does_not_answer_is_redis_down(tmp_path: Path) -> None:
    """Nothing listens on the port: the scrape still answers, with Redis down and no gauge
    read from it."""
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", data_dir=tmp_path)
    settings.upload_dir.mkdir(parents=True)
    store = JobStore.from_url(settings.redis_url)
    try:
        found = scrape(store, settings)
    finally:
        store.redis.close()
    assert found[("verbatim_redis_up", ())] == 0
    assert found[("verbatim_storage_up", ())] == 1
    assert not [name for name, _ in found if name in (
        "verbatim_queue_depth", "verbatim_jobs", "verbatim_workers_ready")]
