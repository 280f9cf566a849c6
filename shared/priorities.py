"""The job queue's priorities, without Celery: the job store ranks new jobs with them, and
processes that only read jobs (the API's render processes) need not load Celery to do so.
`shared/queue.py` sends each job at its priority."""

from __future__ import annotations

# Kombu's Redis transport keeps one list per priority and pops them in order, 0 first. Every
# step is its own list here, so each of the ten priorities counts.
PRIORITY_STEPS = list(range(10))
# A job that already ran once (its worker died) goes before every job that never ran.
REQUEUED_PRIORITY = 0
# New jobs take priorities from here (most urgent) to LOWEST_PRIORITY.
NEW_JOB_PRIORITY = 1
LOWEST_PRIORITY = PRIORITY_STEPS[-1]
