"""The Celery worker: runs faster-whisper on queued jobs."""
