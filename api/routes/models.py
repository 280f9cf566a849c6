"""`GET /v1/models` (issue 22): the model catalogue in OpenAI's list shape, with what Verbatim
knows of each model: its languages, the workers serving it and those holding it loaded, and the
live workers serving its live sessions."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import Identity
from api.deps import JobStoreDep, SettingsDep, run_sync
from api.errors import error_responses
from shared.errors import Unauthorized
from shared.languages import WHISPER_LANGUAGES
from shared.state.heartbeats import LIVE, Heartbeats, WorkerBeat, serving

router = APIRouter(prefix="/v1", tags=["models"])


class ModelInfo(BaseModel):
    """One model of the catalogue, as OpenAI's model object plus Verbatim's fields."""

    id: str = Field(description="The name a job's `model` takes.")
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "verbatim"
    default: bool = Field(description="The model of jobs that name none (and of `whisper-1`).")
    multilingual: bool
    languages: list[str] = Field(description="The languages it transcribes (ISO 639-1).")
    translates: bool = Field(description="Whether it takes `task=translate`.")
    workers: list[str] = Field(description="The running transcription workers (`host:pid`) "
                               "serving it.")
    loaded: list[str] = Field(description="Those of them holding it loaded now.")
    live_workers: list[str] = Field(description="The running live workers (`host:pid`) serving "
                                    "its live sessions (`WS /v1/live`), each warmed up.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


@router.get("/models", responses=error_responses(Unauthorized))
async def list_models(store: JobStoreDep, settings: SettingsDep, _: Identity) -> ModelList:
    """The models this server offers, with the running workers serving each."""
    timeout = settings.heartbeat_timeout_seconds
    workers = serving(await run_sync(Heartbeats(store.redis).live, timeout))
    live = serving(await run_sync(Heartbeats(store.redis, LIVE).live, timeout))
    return ModelList(data=[
        _info(name, settings.default_model, entry.multilingual, workers.get(name, []),
              live.get(name, []))
        for name, entry in settings.catalogue.items()
    ])


def _info(name: str, default: str, multilingual: bool, serving_it: list[WorkerBeat],
          live: list[WorkerBeat]) -> ModelInfo:
    return ModelInfo(
        id=name, default=name == default, multilingual=multilingual,
        languages=sorted(WHISPER_LANGUAGES) if multilingual else ["en"], translates=multilingual,
        workers=[worker.id for worker in serving_it],
        loaded=[worker.id for worker in serving_it if name in worker.loaded],
        live_workers=[worker.id for worker in live],
    )
