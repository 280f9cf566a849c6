"""The `verbatim` command: the client of a Verbatim server and the local launcher of one.

It imports `shared/` only; the API and the worker are started as processes, never imported.
"""
