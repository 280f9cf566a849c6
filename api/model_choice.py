"""The model a new job or live session runs on (issue 22): a catalogue name, able to do what
is asked, and served by a live worker of the right kind, or the submission is refused at once
with nothing stored."""

from __future__ import annotations

import redis

from api.deps import run_sync
from shared.config import Settings
from shared.errors import ModelUnavailable
from shared.models import refuse_english_only, resolve
from shared.schemas import JobOptions
from shared.state.heartbeats import LIVE, TRANSCRIPTION, Group, Heartbeats, serving


async def choose_model(options: JobOptions, settings: Settings, client: redis.Redis) -> JobOptions:
    """`options` naming the catalogue model they run on; `model_not_found`,
    `english_only_model` or `model_unavailable` otherwise."""
    options = named_model(options, settings)
    await run_sync(check_served, options.model or settings.default_model, settings, client)
    return options


async def choose_live_model(options: JobOptions, settings: Settings,
                            client: redis.Redis) -> JobOptions:
    """As `choose_model`, for a live session: served by a live worker."""
    options = named_model(options, settings)
    await run_sync(check_served, options.model or settings.default_model, settings, client,
                   LIVE)
    return options


def named_model(options: JobOptions, settings: Settings) -> JobOptions:
    """`options` naming their catalogue model, if it can do what they ask."""
    name = resolve(settings.catalogue, options.model, settings.default_model)
    refuse_english_only(name, settings.catalogue[name], options)
    return options.model_copy(update={"model": name})


def check_served(name: str, settings: Settings, client: redis.Redis,
                 group: Group = TRANSCRIPTION) -> None:
    """`model_unavailable` when workers of `group` (transcription workers, or live workers for
    a live session) are live but none serves `name`. With none live at all (the fleet
    starting, or down: `/readyz` says so) a job waits in its queue as it always has, and a
    live session is refused with `no_live_worker` once nobody claims it."""
    workers = Heartbeats(client, group).live(settings.heartbeat_timeout_seconds)
    if workers and name not in serving(workers):
        kind = "live worker" if group == LIVE else "transcription worker"
        raise ModelUnavailable(
            f"No {kind} serves model {name!r} now; those running serve "
            f"{', '.join(sorted(serving(workers)))}. Start a {kind} with it in "
            "VERBATIM_WORKER_MODELS, or choose another model."
        )
