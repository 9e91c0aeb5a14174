"""Observability: Prometheus metrics (API, workers, jobs), structured logs and tracing."""
