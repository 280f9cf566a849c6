"""The reliability options are really set: a misspelt decorator option is silently ignored."""

from __future__ import annotations

from faster_whisper.tokenizer import _LANGUAGE_CODES

from shared.config import get_settings
from shared.languages import WHISPER_LANGUAGES
from shared.queue import QUEUE, TRANSCRIBE_TASK, WINDOW_TASK
from worker.celery_app import app
from worker.spread import transcribe_window_task
from worker.tasks import transcribe


def test_task_acks_late_and_requeues_when_its_process_dies() -> None:
    assert transcribe.name == TRANSCRIBE_TASK
    assert transcribe.acks_late is True
    assert transcribe.reject_on_worker_lost is True
    assert transcribe.ignore_result is True


def test_a_window_task_acks_late_and_is_redone_alone_when_its_process_dies() -> None:
    assert transcribe_window_task.name == WINDOW_TASK
    assert WINDOW_TASK in app.tasks
    assert transcribe_window_task.acks_late is True
    assert transcribe_window_task.reject_on_worker_lost is True
    assert transcribe_window_task.ignore_result is True


def test_worker_takes_one_job_at_a_time_and_outwaits_the_longest_job() -> None:
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.task_default_queue == QUEUE
    timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert timeout == get_settings().visibility_timeout_seconds
    assert timeout > get_settings().max_audio_seconds


def test_the_api_knows_the_same_languages_as_faster_whisper() -> None:
    assert set(_LANGUAGE_CODES) == WHISPER_LANGUAGES
