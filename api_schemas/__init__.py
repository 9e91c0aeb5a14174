"""Pydantic v2 contracts shared by the API, the worker and the ML core.

Kept free of web, queue and database imports so the core (`lipspline`) can use
the one TrainingConfig without depending on the service.
"""

from api_schemas.http import ACTIVE_STATES, TERMINAL_STATES, JobStatus
from api_schemas.training_config import (
    ArchitectureConfig,
    ObjectiveConfig,
    RobustnessConfig,
    SplineConfig,
    TrainingConfig,
    TrainingLoopConfig,
)

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "JobStatus",
    "ArchitectureConfig",
    "ObjectiveConfig",
    "RobustnessConfig",
    "SplineConfig",
    "TrainingConfig",
    "TrainingLoopConfig",
]
