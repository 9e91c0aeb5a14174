"""Each objective's penalty equals a direct computation on a small net."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from api_schemas import TrainingConfig
from lipspline.nn.networks import SplineNetwork
from lipspline.nn.splines import LinearSpline
from lipspline.objectives import Objective, data_loss, resolve_loss
from lipspline.objectives.modes.spline_norms import squared_norm_sum


def small_net(mode: str, activation: str = "deepspline", **objective) -> tuple[SplineNetwork, Objective]:
    config = TrainingConfig.model_validate(
        {
            "architecture": {"hidden": [3, 4], "activation": activation},
            "spline": {"knots": 7, "range": 1.5},
            "objective": {"mode": mode, "lambda": 0.3, "mu": 0.05, **objective},
        }
    )
    torch.manual_seed(7)
    net = SplineNetwork(config, 2, 1)
    with torch.no_grad():
        for spline in net.splines():
            spline.coefficients.add_(torch.randn_like(spline.coefficients) * 0.4)
    return net, Objective(config.objective, net)


def direct_bv2(c: np.ndarray, grid_range: float) -> np.ndarray:
    """BV2 norm from first principles: sum |jumps of slope| + |sigma(0)| + |sigma(1)|."""
    k = c.shape[1]
    grid = np.linspace(-grid_range, grid_range, k)
    delta = grid[1] - grid[0]
    slopes = np.diff(c, axis=1) / delta
    tv2 = np.abs(np.diff(slopes, axis=1)).sum(axis=1)
    at0 = np.array([np.interp(0.0, grid, row) for row in c])
    at1 = np.array([np.interp(1.0, grid, row) for row in c])
    return tv2 + np.abs(at0) + np.abs(at1)


def direct_tv2(c: np.ndarray, grid_range: float) -> np.ndarray:
    delta = 2 * grid_range / (c.shape[1] - 1)
    return np.abs(np.diff(np.diff(c, axis=1) / delta, axis=1)).sum(axis=1)


def weights_np(net: SplineNetwork) -> list[np.ndarray]:
    return [w.detach().double().numpy() for w in net.weights()]


@pytest.mark.parametrize("outer", ["l1", "l2"])
def test_bv2_penalty(outer):
    net, objective = small_net("bv2", outer_norm=outer)
    terms = objective.penalties(net)
    decay = 0.05 * sum((w**2).sum() for w in weights_np(net))
    norms = [direct_bv2(s.coefficients.detach().double().numpy(), 1.5) for s in net.splines()]
    combine = (lambda v: v.sum()) if outer == "l1" else (lambda v: np.sqrt((v**2).sum()))
    spline_term = 0.3 * sum(combine(v) for v in norms)
    assert set(terms) == {"weight_decay", "bv2"}
    assert float(terms["weight_decay"]) == pytest.approx(decay, rel=1e-5)
    assert float(terms["bv2"]) == pytest.approx(spline_term, rel=1e-5)


def test_weight_decay_node_matches_the_composed_sum_in_value_and_gradient():
    torch.manual_seed(3)
    weights = [torch.randn(5, 3, dtype=torch.float64, requires_grad=True), torch.randn(2, 5, dtype=torch.float64,
                                                                                      requires_grad=True)]
    fused = squared_norm_sum(weights)
    composed = sum((w**2).sum() for w in weights)
    assert float(fused) == pytest.approx(float(composed), rel=1e-14)
    fused_grads = torch.autograd.grad(fused * 0.7, weights)
    composed_grads = torch.autograd.grad(composed * 0.7, weights)
    for got, want in zip(fused_grads, composed_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-14, atol=0)
    assert torch.autograd.gradcheck(lambda *w: squared_norm_sum(w), tuple(weights))
    frozen = [weights[0].detach(), weights[1]]  # a weight that needs no gradient gets none
    (grad_w1,) = torch.autograd.grad(squared_norm_sum(frozen), [weights[1]])
    torch.testing.assert_close(grad_w1, 2 * weights[1].detach())


def test_tv2_penalty():
    net, objective = small_net("tv2")
    terms = objective.penalties(net)
    expected = 0.3 * sum(direct_tv2(s.coefficients.detach().double().numpy(), 1.5).sum() for s in net.splines())
    assert float(terms["tv2"]) == pytest.approx(expected, rel=1e-5)


def test_spectral_penalties():
    net, coupled = small_net("lipschitz_coupled", activation="relu")
    norms = [np.linalg.norm(w, 2) for w in weights_np(net)]
    assert float(coupled.penalties(net)["lipschitz_product"]) == pytest.approx(0.3 * np.prod(norms), rel=1e-5)
    net, layerwise = small_net("layerwise_spectral", activation="relu")
    norms = [np.linalg.norm(w, 2) for w in weights_np(net)]
    assert float(layerwise.penalties(net)["spectral_sum"]) == pytest.approx(0.3 * np.sum(norms), rel=1e-5)


def test_coupled_gradient_flows_through_every_layer():
    net, objective = small_net("lipschitz_coupled", activation="relu")
    objective.penalties(net)["lipschitz_product"].backward()
    assert all(float(layer.weight.grad.abs().sum()) > 0 for layer in net.layers)


def test_one_lipschitz_penalty_is_tv2_and_none_has_no_terms():
    net, objective = small_net("one_lipschitz")
    expected = 0.3 * sum(
        direct_tv2(s.effective_coefficients().detach().double().numpy(), 1.5).sum() for s in net.splines()
    )
    assert float(objective.penalties(net)["tv2"]) == pytest.approx(expected, rel=1e-5)
    net, objective = small_net("none")
    assert objective.penalties(net) == {}
    net, objective = small_net("maxnorm")
    assert objective.penalties(net) == {}


def test_maxnorm_projection_caps_every_row():
    net, objective = small_net("maxnorm", max_norm=0.2, activation="relu")
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(10)
    before = [layer.weight.detach().clone() for layer in net.layers]
    objective.after_step(net)
    for old, layer in zip(before, net.layers, strict=True):
        norms = layer.weight.norm(dim=1)
        assert float(norms.max()) <= 0.2 + 1e-6
        # projection keeps the direction of each row
        cosine = torch.nn.functional.cosine_similarity(old, layer.weight, dim=1)
        assert float(cosine.min()) > 1 - 1e-6


def test_auto_lambda_balances_by_theorem_4():
    net, objective = small_net("bv2", auto_lambda=True)
    objective.on_epoch_start(net)
    weights = weights_np(net)
    for i, activation in enumerate(net.activations):
        assert isinstance(activation, LinearSpline)
        norm = direct_bv2(activation.coefficients.detach().double().numpy(), 1.5).sum()
        # lambda_l * ||sigma_l||_{BV2,1} = 2 mu ||W_{l+1}||_F^2
        assert objective.lambdas[i] * norm == pytest.approx(2 * 0.05 * (weights[i + 1] ** 2).sum(), rel=1e-5)


def test_losses_and_auto_resolution():
    assert resolve_loss("auto", "classification", 1) == "bce"
    assert resolve_loss("auto", "classification", 3) == "cross_entropy"
    assert resolve_loss("auto", "regression", 1) == "mse"
    assert resolve_loss("mae", "regression", 1) == "mae"
    out = torch.tensor([[0.5], [-1.0]])
    y = torch.tensor([1.0, 0.0])
    expected = -(np.log(1 / (1 + np.exp(-0.5))) + np.log(1 - 1 / (1 + np.exp(1.0)))) / 2
    assert float(data_loss("bce", out, y)) == pytest.approx(expected, rel=1e-6)
    assert float(data_loss("mae", out, y)) == pytest.approx((0.5 + 1.0) / 2)
    assert float(data_loss("mse", out, y)) == pytest.approx((0.25 + 1.0) / 2)
