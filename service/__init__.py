"""The LipSpline HTTP service: FastAPI app, settings, database layer, CLI.

The ML core (`lipspline`) never imports from here; this package wires the core
to HTTP, the database and the task queue.
"""
