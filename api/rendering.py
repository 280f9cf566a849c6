"""Transcript downloads rendered in worker processes, never on the event loop (issue 26).

Cueing hours of segments into subtitles takes seconds of CPU, and reading a 4-hour transcript
back (pydantic, in Rust) holds the GIL for hundreds of milliseconds at a stretch: on the event
loop, or in a thread of the API's own process, either stalled every request (`/healthz` waited
up to 2.7 s with 4-hour downloads: `bench/render_bench.py`). So a download is rendered in one of
`RENDER_PROCESSES` worker processes (anyio's process pool: started on first use, kept while in
use), which reads the transcript from Redis itself; only the rendered text comes back. Renders
beyond that many wait their turn without holding a thread that other work needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_process

from api import openai_compat
from shared.output.formatters import render
from shared.output.subtitles import SubtitleOptions
from shared.schemas import Speaker
from shared.state.jobs import JobStore
from shared.state.speaker_names import save_names

if TYPE_CHECKING:  # the render processes import this module: they need none of the web stack
    from starlette.requests import Request

T = TypeVar("T")

RENDER_PROCESSES = 2
RENDER_NICENESS = 10


def render_limiter() -> anyio.CapacityLimiter:
    """The limiter of one API process's renders (made in the app's lifespan, in its loop)."""
    return anyio.CapacityLimiter(RENDER_PROCESSES)


async def off_loop(request: Request, func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` in a render process; `func` and its arguments must pickle."""
    limiter: anyio.CapacityLimiter = request.app.state.renders
    return await anyio.to_process.run_sync(func, *args, limiter=limiter)  # type: ignore[arg-type]


@lru_cache(maxsize=4)
def _store(redis_url: str) -> JobStore:
    """The render process's own connection to Redis; the first call also lowers the process's
    priority, so that a core the API's event loop wants is never held by a render."""
    if not _store.cache_info().currsize:
        os.nice(RENDER_NICENESS)
    return JobStore.from_url(redis_url)


def transcript_text(redis_url: str, job_id: str, fmt: str, options: SubtitleOptions,
                    renames: dict[str, str] | None = None) -> str | None:
    """The job's stored transcript in `fmt`, its speakers named as `renames` asks (run in a
    render process); None when it is gone."""
    transcript = _store(redis_url).get_transcript(job_id)
    return None if transcript is None else render(transcript, fmt, options, renames)


def openai_answer(redis_url: str, job_id: str,
                  form: openai_compat.AudioRequest) -> tuple[str, str] | None:
    """The body and media type of `/v1/audio/*`'s answer for the finished job (run in a render
    process); None when its transcript is gone."""
    transcript = _store(redis_url).get_transcript(job_id)
    return None if transcript is None else openai_compat.render(form, transcript)


def saved_names(redis_url: str, job_id: str, names: dict[str, str | None]
                ) -> list[Speaker] | None:
    """`shared.state.speaker_names.save_names` in a render process: a long transcript is read
    and written back whole. None when the job or its transcript is gone."""
    return save_names(_store(redis_url), job_id, names)
