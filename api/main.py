"""The ASGI application: `uvicorn api.main:app`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import metrics
from api.errors import install_error_handlers
from api.live_relay import LiveRelay
from api.observability import ObservabilityMiddleware
from api.quotas import Quotas
from api.rendering import render_limiter
from api.routes import (
    classify,
    events,
    health,
    jobs,
    live,
    models,
    openai,
    page,
    recording,
    speakers,
    status,
)
from api.security import SecurityHeadersMiddleware
from api.sse import JobStreams
from api.sweeper import sweeping
from shared.config import Settings, get_settings
from shared.logs import configure_logging
from shared.media.storage import prepare_store
from shared.queue import make_celery
from shared.state.jobs import JobReader, JobStore
from shared.state.keys import KeyFinder
from shared.state.relay import EventHub, events_client

log = logging.getLogger(__name__)
# Connections for event streams' replays and checks; their live events share one more.
EVENT_READ_CONNECTIONS = 32


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; tests pass their own `Settings`."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prepare_store(settings)  # a store it cannot use stops the API here, naming the setting
        app.state.store = JobStore.from_url(settings.redis_url)
        app.state.celery = make_celery(settings, main="verbatim-api")
        app.state.reader = JobReader.from_url(settings.redis_url)  # status reads, key lookups
        app.state.key_finder = KeyFinder(app.state.reader.redis)
        app.state.quotas = Quotas(settings.redis_url, app.state.store)
        app.state.renders = render_limiter()
        if settings.auth == "off":
            log.warning("VERBATIM_AUTH=off: anyone who can reach this API can use it")
        events_redis = events_client(settings.redis_url, EVENT_READ_CONNECTIONS)
        async with EventHub(events_redis, settings.events_check_seconds) as hub:
            app.state.job_streams = JobStreams(hub, settings)
            app.state.live = LiveRelay(settings, hub, app.state.store, app.state.quotas,
                                       app.state.celery, app.state.key_finder)
            with metrics.listener(settings, app.state.store):
                async with sweeping(settings, app.state.store):
                    # What start-up made (modules, the app, pydantic's validators) lives as long
                    # as the process: frozen, the collector never walks it again. Each full
                    # collection walked all of it, pausing every request for 50-400 ms, the
                    # long tail of the status reads' latency (`bench/status_bench.py`).
                    gc.freeze()
                    yield
                    gc.unfreeze()  # a process that builds apps again (tests) collects this one
        app.state.celery.close()
        app.state.quotas.close()
        app.state.store.redis.close()
        await events_redis.aclose()
        await app.state.reader.redis.aclose()

    app = FastAPI(
        title="Verbatim",
        summary="Asynchronous speech transcription with faster-whisper.",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json" if settings.openapi_enabled else None,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
    )
    app.state.settings = settings  # the `SettingsDep` of every route (`api.auth.app_settings`)
    install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ObservabilityMiddleware)
    # Ahead of the routers: the status read, which clients poll (`api/routes/status.py`).
    app.router.routes.append(status.StatusRoute())
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(recording.router)
    app.include_router(live.router)
    app.include_router(openai.router)
    app.include_router(speakers.router)
    app.include_router(classify.router)
    app.include_router(models.router)
    app.include_router(health.router)
    if not settings.metrics_port:  # else served by `metrics.listener` on a port of its own
        app.include_router(metrics.router)
    page.install(app)
    return app


configure_logging(get_settings())
app = create_app()
