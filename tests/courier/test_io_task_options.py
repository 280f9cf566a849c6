"""The I/O worker's reliability options are really set, and it never imports the model stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from courier.celery_app import app
from courier.tasks import deliver_webhook, fetch_media
from shared.state.webhooks import DELIVER_TASK, FETCH_TASK, IO_QUEUE

ROOT = Path(__file__).resolve().parents[2]


def test_tasks_ack_late_and_go_back_to_the_queue_when_the_worker_dies() -> None:
    for task, name in ((deliver_webhook, DELIVER_TASK), (fetch_media, FETCH_TASK)):
        assert task.name == name
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert task.ignore_result is True
    assert app.conf.task_default_queue == IO_QUEUE


def test_the_io_worker_loads_no_model_stack() -> None:
    check = ("import sys, courier.tasks; "
             "print(sorted({'faster_whisper', 'ctranslate2', 'worker'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "[]"
