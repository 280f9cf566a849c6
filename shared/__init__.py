"""What the API and the workers share.

At the top, the contracts between processes: settings (`config.py`), errors, schemas, languages,
job extras, the Celery transport (`queue.py`), logs, outbound HTTP and the local Redis launcher.
Below, by concern: `state/` (each feature's Redis side), `media/` (uploads in and at rest),
`output/` (what a transcript is rendered into)."""
