"""LipSpline ML core: deep-spline networks, BV2 training and Lipschitz certificates.

Imports torch, numpy and the shared pydantic contracts only: nothing from the
web service, the task queue or the database layer.
"""

__version__ = "0.1.0"
