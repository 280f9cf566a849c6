"""The I/O worker: delivers webhooks and downloads media URLs, off the transcription workers."""
