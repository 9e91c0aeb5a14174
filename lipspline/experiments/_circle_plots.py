"""Figures of the circle recipe: learned activations, decision boundaries, sparsity against lambda.

Kept apart from ``circle.py`` so the recipe's logic reads without matplotlib
code, and so matplotlib (slow to import) is only loaded when a figure is
actually drawn. Every function takes already-evaluated numbers or models and
writes one PNG; none of them trains anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lipspline.nn.model import TrainedModel

#: radius of the true decision boundary, x1^2 + x2^2 = 2/pi (a disc of area 2)
CIRCLE_RADIUS = float(np.sqrt(2.0 / np.pi))


def _pyplot():
    """matplotlib.pyplot on the Agg backend: recipes run headless, in tests and on servers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_activations(model: TrainedModel, train_inputs: np.ndarray, threshold: float, path: Path, title: str) -> Path:
    """Each hidden neuron's learned spline, its active knots, and where the training data puts its input.

    The pre-activation range of the training data is shaded: knots outside it
    see no data, so only the BV² penalty shapes them (and should flatten them).
    """
    plt = _pyplot()
    network = model.network
    splines = network.splines()
    if not splines:
        raise ValueError("plot_activations needs a deep-spline network")
    with torch.no_grad():
        x = network.standardize(torch.tensor(np.array(train_inputs, dtype=np.float32)))
        pre = network.layers[0](x).double().numpy()
    spline = splines[0]
    span = spline.grid_range + 0.5
    xs = torch.linspace(-span, span, 601, dtype=torch.float64)
    values = spline.values_at(xs).numpy()
    knots = spline.relu_form().knots.numpy()
    active = spline.active_knots(threshold).numpy()
    at_knots = spline.values_at(torch.as_tensor(knots)).numpy()
    grid_values = spline.values_at(spline.grid()).numpy()
    n = spline.num_splines
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.axvspan(pre[:, i].min(), pre[:, i].max(), color="0.92", label="training pre-activations")
        ax.plot(xs.numpy(), values[i], color="C0", lw=2, label="learned σ")
        ax.plot(spline.grid().numpy(), grid_values[i], "o", ms=2.5, color="0.55", label="grid knots")
        ax.plot(knots[active[i]], at_knots[i][active[i]], "o", ms=6, mfc="none", mec="C3", mew=1.5,
                label=f"active knots (|a_k| > {threshold:g}): {int(active[i].sum())}")
        ax.set_title(f"neuron {i + 1}")
        ax.set_xlabel("pre-activation (standardised input units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_boundaries(models: Sequence[tuple[str, TrainedModel]], test_x: np.ndarray, test_y: np.ndarray,
                    path: Path) -> Path:
    """Predicted inside-region and the 0-level set of each model's logit, over the true circle.

    Misclassified test points are marked, so the figure shows where the test
    errors the tables count actually are (at the boundary, or not).
    """
    plt = _pyplot()
    side = np.linspace(-1.0, 1.0, 301)
    g1, g2 = np.meshgrid(side, side)
    grid = np.column_stack([g1.ravel(), g2.ravel()])
    theta = np.linspace(0.0, 2.0 * np.pi, 400)
    fig, axes = plt.subplots(1, len(models), figsize=(4.3 * len(models), 4.3), squeeze=False)
    for ax, (label, model) in zip(axes[0], models, strict=True):
        logits = model.outputs(grid).numpy().reshape(g1.shape)
        ax.contourf(g1, g2, logits > 0, levels=[-0.5, 0.5, 1.5], colors=["white", "#cfe3f5"])
        ax.contour(g1, g2, logits, levels=[0.0], colors="C0", linewidths=1.8)
        ax.plot(CIRCLE_RADIUS * np.cos(theta), CIRCLE_RADIUS * np.sin(theta), "--", color="C3", lw=1.2)
        predicted = np.asarray(model.predict(test_x))
        wrong = predicted != test_y
        ax.plot(test_x[wrong, 0], test_x[wrong, 1], "x", ms=3, color="k", alpha=0.6)
        ax.set_title(f"{label}\n{int(wrong.sum())} of {len(test_y)} test points wrong", fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-1, 1)
        ax.set_ylim(-1, 1)
        ax.set_xticks([-1.0, -0.5, 0.0, 0.5, 1.0])
        ax.set_yticks([-1.0, -0.5, 0.0, 0.5, 1.0])
    (boundary,) = axes[0][0].plot([], [], color="C0")
    (truth,) = axes[0][0].plot([], [], "--", color="C3")
    (wrong_marker,) = axes[0][0].plot([], [], "x", color="k")
    fig.legend(
        [boundary, truth, wrong_marker],
        ["learned boundary (logit = 0)", "true circle x₁² + x₂² = 2/π", "misclassified test point"],
        loc="lower center",
        ncol=3,
        fontsize=8,
    )
    fig.tight_layout(rect=(0.0, 0.06, 1.0, 1.0))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sparsity(lambdas: Sequence[float], active: Sequence[float], total: int, accuracy: Sequence[float],
                  path: Path) -> Path:
    """Active knots and test accuracy against lambda, on one log-x axis pair (the sparsity effect)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.semilogx(lambdas, active, "o-", color="C3", label="active knots (median)")
    ax.axhline(total, color="C3", ls=":", lw=1, label=f"all {total} interior knots")
    ax.set_xlabel("λ (BV² weight, per sample)")
    ax.set_ylabel("active knots", color="C3")
    ax.set_ylim(0, total * 1.08)
    twin = ax.twinx()
    twin.semilogx(lambdas, accuracy, "s--", color="C0", label="test accuracy (median)")
    twin.set_ylabel("test accuracy (%)", color="C0")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_front(trials: Sequence[tuple[float, float, float]], front: Sequence[int], selected: int | None,
               path: Path) -> Path:
    """Test accuracy against certified L, one point per λ, the Pareto front joined, the knee marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for index, (lam, accuracy, bound) in enumerate(trials):
        ax.semilogx([bound], [accuracy], "o", color="C0" if index in front else "0.6")
        ax.annotate(f"λ={lam:.0e}", (bound, accuracy), fontsize=7, xytext=(4, 3), textcoords="offset points")
    on_front = sorted((trials[i][2], trials[i][1]) for i in front)
    if on_front:
        ax.semilogx([p[0] for p in on_front], [p[1] for p in on_front], "-", color="C0", lw=1, label="Pareto front")
    if selected is not None:
        ax.semilogx([trials[selected][2]], [trials[selected][1]], "*", color="C3", ms=12, label="knee (selected)")
    ax.set_xlabel("certified Lipschitz bound L (ℓ2)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
