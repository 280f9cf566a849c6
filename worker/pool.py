"""Celery's `threads` pool, made able to stop its jobs when a stop runs out of grace.

At a cold shutdown (SIGTERM under `REMAP_SIGTERM=SIGQUIT`, once
`worker_soft_shutdown_timeout` has passed) Celery cancels every running job through
`terminate_job`, which its own threads pool does not implement (it raises
`NotImplementedError`, and the worker then waits for its jobs to end however long they take).
A thread cannot be killed, so here the cancel sets an event instead, and each job checks it at
its next progress report (`worker/tasks.py`) and gives its message back to the queue. Celery
also calls `terminate_job` for `revoke(terminate=True)`, which Verbatim never sends.
"""

from __future__ import annotations

import threading
from typing import Any

from celery.concurrency import thread

_stopping = threading.Event()


class Stopped(Exception):
    """The worker is stopping: the job goes back on the queue."""


class ThreadPool(thread.TaskPool):
    """`celery.concurrency.thread.TaskPool` whose `terminate_job` stops its jobs."""

    def terminate_job(self, pid: int, signal: Any = None) -> None:
        # Every job of this pool runs in this one process (`pid`): they all stop.
        _stopping.set()


def check_stopping() -> None:
    """Raise `Stopped` once this process's pool has been told to stop its jobs."""
    if _stopping.is_set():
        raise Stopped("The worker stopped before the job finished.")
