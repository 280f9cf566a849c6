"""The I/O worker's webhook threads: due attempts taken from Redis, beside the fetch threads.

Webhook events are scheduled in Redis (`shared/state/webhooks.py`), not queued as Celery
messages, so that a delivery never waits behind media downloads in the I/O worker's pool and no
killed worker strands one. One thread takes what is due, at most as many as there are free
webhook threads (`io_webhook_threads`), and hands each to them; it looks again when one is
free, when the next attempt falls due, and at least every `POLL_SECONDS` (for events that
other processes announce).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import redis

from courier.delivery import deliver
from shared.logs import bind
from shared.state.webhooks import Events

log = logging.getLogger(__name__)

# Longest wait before looking for newly announced events.
POLL_SECONDS = 0.25


class Sender:
    """Takes due webhook attempts and makes them on threads of its own, as `holder`."""

    def __init__(self, events: Events, holder: str) -> None:
        self.events, self.holder = events, holder
        self.threads = events.settings.io_webhook_threads
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="verbatim-webhook")
        self._busy = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verbatim-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Take nothing more; wait up to `timeout` for the attempts under way."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                wait = self._send_due()
                failing = False
            except redis.RedisError as exc:
                if not failing:  # once per outage
                    log.warning("webhook schedule unreachable: %s", exc)
                failing, wait = True, POLL_SECONDS
            self._wake.wait(wait)
            self._wake.clear()

    def _send_due(self) -> float:
        """Hand what is due to free threads; how long to wait before looking again."""
        with self._lock:
            free = self.threads - self._busy
        if free == 0:
            return POLL_SECONDS  # woken sooner when a thread is free
        for job_id, attempt in self.events.take_due(free):
            with self._lock:
                self._busy += 1
            self._pool.submit(self._attempt, job_id, attempt).add_done_callback(self._done)
        due = self.events.next_due_in()
        return POLL_SECONDS if due is None else min(due, POLL_SECONDS)

    def _attempt(self, job_id: str, attempt: int) -> None:
        with bind(job_id=job_id):
            try:
                deliver(self.events, job_id, attempt, self.holder)
            except Exception:  # its lease runs out and it is taken again
                log.exception("webhook attempt failed inside the I/O worker")

    def _done(self, _: Future[None]) -> None:
        with self._lock:
            self._busy -= 1
        self._wake.set()
