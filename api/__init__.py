"""The HTTP API: accepts uploads, records jobs, enqueues them, serves results."""
