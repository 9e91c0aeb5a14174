"""Celery workers: the app, the training task, and the embedded worker of `lipspline serve`."""
