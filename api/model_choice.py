"""The model a new job runs on (issue 22): a catalogue name, able to do what the job asks, and
served by a live worker, or the submission is refused at once with nothing stored."""

from __future__ import annotations

import redis

from api.deps import run_sync
from shared.config import Settings
from shared.errors import ModelUnavailable
from shared.models import refuse_english_only, resolve
from shared.schemas import JobOptions
from shared.state.heartbeats import Heartbeats, serving


async def choose_model(options: JobOptions, settings: Settings, client: redis.Redis) -> JobOptions:
    """`options` naming the catalogue model they run on; `model_not_found`,
    `english_only_model` or `model_unavailable` otherwise."""
    options = named_model(options, settings)
    await run_sync(check_served, options.model or settings.default_model, settings, client)
    return options


def named_model(options: JobOptions, settings: Settings) -> JobOptions:
    """`options` naming their catalogue model, if it can do what they ask (a live session's:
    live workers are claimed, not counted)."""
    name = resolve(settings.catalogue, options.model, settings.default_model)
    refuse_english_only(name, settings.catalogue[name], options)
    return options.model_copy(update={"model": name})


def check_served(name: str, settings: Settings, client: redis.Redis) -> None:
    """`model_unavailable` when transcription workers are live but none serves `name`. With no
    live worker at all (the fleet starting, or down: `/readyz` says so) a job waits in its
    queue as it always has."""
    workers = Heartbeats(client).live(settings.heartbeat_timeout_seconds)
    if workers and name not in serving(workers):
        raise ModelUnavailable(
            f"No live worker serves model {name!r} now; the live workers serve "
            f"{', '.join(sorted(serving(workers)))}. Start a worker with it in "
            "VERBATIM_WORKER_MODELS, or choose another model."
        )
