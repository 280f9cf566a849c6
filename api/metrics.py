"""The API's Prometheus metrics and `GET /metrics`.

Counters and histograms are kept by each process. With `PROMETHEUS_MULTIPROC_DIR` set (uvicorn
`--workers N`), prometheus-client keeps them in files there instead, and whichever process
answers a scrape adds up every process's files. The gauges of the service around it (queue
depth, jobs by status, workers ready, whether Redis and the upload directory answer) are
computed at scrape time by the answering process alone and never written to those files, so N
processes do not report N times the queue.

With `metrics_port` set, `/metrics` leaves the API port and is served by prometheus-client's own
HTTP server on that port, in a thread of the API process (`listener`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.deps import JobStoreDep, SettingsDep, run_sync
from shared.config import Settings
from shared.media.storage import media_store
from shared.queue import queue_depths_by_model
from shared.state.heartbeats import Heartbeats
from shared.state.jobs import JobStore

log = logging.getLogger(__name__)

disable_created_metrics()  # `*_created` series: one more per counter, of no use here

UNMATCHED_ROUTE = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "verbatim_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "verbatim_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, uploads included.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
JOBS_SUBMITTED = Counter("verbatim_jobs_submitted_total", "Jobs accepted and queued.")
UPLOAD_BYTES = Counter(
    "verbatim_upload_bytes_total", "Bytes of audio in the uploads that became jobs."
)

router = APIRouter(include_in_schema=False)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"  # clients choose methods: bound them
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def job_submitted(upload_bytes: int) -> None:
    JOBS_SUBMITTED.inc()
    UPLOAD_BYTES.inc(upload_bytes)


class ServiceGauges(Collector):
    """What this API sees of the service, read when scraped: whether Redis answers and the
    upload directory takes a write, the queues by model and priority, jobs by status and the worker
    processes with a loaded model (those `/readyz` counts)."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "verbatim_storage_up",
            "1 if this API can write to the upload directory (local) or reach the bucket (s3), "
            "else 0.",
            value=int(media_store(self.settings).ready()),
        )
        try:
            depths = queue_depths_by_model(self.store.redis, list(self.settings.catalogue))
            counts = self.store.count_by_status()
            workers = Heartbeats(self.store.redis).live(self.settings.heartbeat_timeout_seconds)
        except redis.RedisError as exc:  # the scrape still serves the process's own metrics
            log.warning("metrics: Redis is unreachable: %s", exc)
            yield _redis_up(0)
            return
        yield _redis_up(1)
        queue = GaugeMetricFamily(
            "verbatim_queue_depth", "Jobs waiting in the Celery queues in Redis, by model (each "
            "model's queue) and priority (0 is taken first).", labels=["model", "priority"],
        )
        for model, by_priority in depths.items():
            for priority, depth in by_priority.items():
                queue.add_metric([model, str(priority)], depth)
        yield queue
        jobs = GaugeMetricFamily(
            "verbatim_jobs", "Job records in Redis by status.", labels=["status"]
        )
        for status, count in counts.items():
            jobs.add_metric([status.value], count)
        yield jobs
        yield GaugeMetricFamily(
            "verbatim_workers_ready",
            "Transcription worker processes with a loaded model that reported in within "
            "heartbeat_timeout_seconds (what /readyz counts).",
            value=len(workers),
        )


def _redis_up(value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "verbatim_redis_up", "1 if this API's last read of Redis answered, else 0.", value=value
    )


class Scraped(Collector):
    """What a scrape shows: this process's (or all processes') metrics, then the service's."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.service_gauges = ServiceGauges(store, settings)

    def collect(self) -> Iterator[Metric]:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            yield from multiprocess.MultiProcessCollector(None).collect()
        else:
            yield from REGISTRY.collect()
        yield from self.service_gauges.collect()


def scrape_registry(store: JobStore, settings: Settings) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(Scraped(store, settings))
    return registry


def render(store: JobStore, settings: Settings) -> bytes:
    """The text exposition of a scrape."""
    return generate_latest(scrape_registry(store, settings))


@contextmanager
def listener(settings: Settings, store: JobStore) -> Iterator[None]:
    """Serve `/metrics` on `metrics_port` while the block runs (nothing when it is 0).

    Under `uvicorn --workers N` each process tries the port and the first one gets it; in
    multiprocess mode its scrape adds up every process's files, so one listener is enough."""
    if not settings.metrics_port:
        yield
        return
    try:
        server, _ = start_http_server(settings.metrics_port, settings.metrics_host,
                                      registry=scrape_registry(store, settings))
    except OSError as exc:  # the API still works; only this process's listener is missing
        level = logging.INFO if "PROMETHEUS_MULTIPROC_DIR" in os.environ else logging.ERROR
        log.log(level, "metrics: cannot listen on %s:%d: %s", settings.metrics_host,
                settings.metrics_port, exc)
        yield
        return
    log.info("metrics on %s:%d/metrics", settings.metrics_host, settings.metrics_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@router.get("/metrics")
async def metrics(store: JobStoreDep, settings: SettingsDep) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(await run_sync(render, store, settings), media_type=CONTENT_TYPE_LATEST)
