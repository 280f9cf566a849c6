"""Job options become faster-whisper arguments; an unset option keeps faster-whisper's default."""

from __future__ import annotations

import inspect

from faster_whisper import WhisperModel

from shared.config import Settings
from shared.schemas import JobOptions
from worker.transcriber import whisper_kwargs


def test_temperature_is_passed_only_when_a_job_sets_it() -> None:
    settings = Settings()
    assert "temperature" not in whisper_kwargs(JobOptions(), settings)
    assert whisper_kwargs(JobOptions(temperature=0.4), settings)["temperature"] == 0.4
    assert whisper_kwargs(JobOptions(temperature=0), settings)["temperature"] == 0


def test_every_argument_is_one_faster_whisper_takes() -> None:
    accepted = inspect.signature(WhisperModel.transcribe).parameters
    assert set(whisper_kwargs(JobOptions(temperature=0.2), Settings())) <= set(accepted)
