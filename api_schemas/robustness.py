"""What is certified about a model on held-out data: robust accuracy (classifiers), output tolerance (regression).

Computed by the worker at the end of training (``lipspline/training/robust_accuracy.py``) on the
run's validation split (``split`` says when there was none and the training data was used),
stored in the model's ``metrics`` and returned typed on ``GET /v1/models/{id}``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CertifiedAccuracyOut(BaseModel):
    """The certified-accuracy curve: at ``radii[i]``, ``global_[i]`` of the points are classified
    correctly *and* provably keep their label within that l2 radius (rounding included)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    split: str = Field(description="'validation', or 'training' when the run had no validation split")
    points: int
    radii: list[float] = Field(description="l2 radii, raw input units")
    radius_rule: str = Field(description="where the radii come from (the config, or the default rule)")
    lipschitz: float | None = Field(description="the certified global bound the curve is computed with")
    accuracy: float = Field(description="clean accuracy on the same points")
    global_: list[float] = Field(alias="global", description="certified accuracy from the global bound")
    local: list[float] | None = Field(None, description="certified by the global or the local bound in the ball")
    local_note: str | None = None
    target_radius: float | None = Field(None, description="robustness.target_radius of the run (one of the radii)")
    certified_at_target: float | None = Field(
        None, description="certified accuracy at target_radius (the local curve where computed, else the global)"
    )
    warning: str | None = Field(None, description="set when no radius > 0 certifies a single point")


class CertifiedToleranceOut(BaseModel):
    """Regression: how far the returned outputs can provably move at each input eps, beside the error."""

    model_config = ConfigDict(extra="ignore")

    split: str
    points: int
    epsilons: list[float]
    radius_rule: str
    lipschitz: float | None
    output_tolerance: list[float | None] = Field(description="largest certified output change over the points")
    median_output_tolerance: list[float | None]
    mae: float
    rmse: float
