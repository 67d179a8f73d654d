"""Loss values, activations and gradients of the MLP core, checked against references."""

import itertools

import numpy as np
import pytest

from shared.mlp import Architecture, Network, compute_loss, loss_and_gradients
from shared.mlp.activations import ACTIVATIONS
from shared.mlp.losses import loss_value

COMBINATIONS = [
    (hidden, output, loss)
    for hidden, output, loss in itertools.product(
        ("relu", "sigmoid", "tanh"), ("softmax", "sigmoid", "linear"), ("cross_entropy", "mse")
    )
    if not (output == "linear" and loss == "cross_entropy")
]


def _problem(
    hidden: str, output: str, loss: str, seed: int = 0
) -> tuple[Network, np.ndarray, np.ndarray]:
    """A float64 784-7-6-10 network and 8 random samples for finite differences."""
    rng = np.random.default_rng(seed)
    arch = Architecture.create([784, 7, 6, 10], hidden, output, loss)
    net = Network.initialize(arch, rng).astype(np.float64)
    for b in net.biases:
        b[...] = rng.normal(0, 0.1, b.shape)  # non-zero biases exercise their gradient too
    x = rng.random((8, 784))
    y = rng.integers(0, 10, 8)
    return net, x, y


def _seed_loss(loss: str, p: np.ndarray, y: np.ndarray) -> float:
    """The seed's formulas, with its one-hot matrix (p is (m, classes) here)."""
    onehot = np.zeros_like(p)
    onehot[np.arange(y.size), y] = 1
    if loss == "cross_entropy":
        return float(-np.sum(onehot * np.log(p + 1e-15)) / y.size)
    return float(np.sum((p - onehot) ** 2) / y.size)


def test_there_are_fifteen_valid_combinations() -> None:
    """3 hidden x 3 output x 2 losses, minus the 3 linear + cross-entropy ones, all build."""
    assert len(COMBINATIONS) == 15
    for combo in COMBINATIONS:
        Architecture.create([784, 10], *combo)


@pytest.mark.parametrize("hidden,output,loss", COMBINATIONS)
def test_gradient_matches_central_differences(hidden: str, output: str, loss: str) -> None:
    """Backprop equals central finite differences (float64) for every combination."""
    net, x, y = _problem(hidden, output, loss)
    _, grad_w, grad_b = loss_and_gradients(net, x, y)
    rng = np.random.default_rng(1)
    eps = 1e-6
    params = [p for pair in zip(net.weights, net.biases, strict=True) for p in pair]
    grads = [g for pair in zip(grad_w, grad_b, strict=True) for g in pair]
    for param, grad in zip(params, grads, strict=True):
        flat, gflat = param.reshape(-1), grad.reshape(-1)
        picks = rng.choice(flat.size, size=min(flat.size, 25), replace=False)
        for i in picks:
            keep = flat[i]
            flat[i] = keep + eps
            up = compute_loss(net, x, y)
            flat[i] = keep - eps
            down = compute_loss(net, x, y)
            flat[i] = keep
            numeric = (up - down) / (2 * eps)
            assert gflat[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("hidden,output,loss", COMBINATIONS)
def test_gradient_matches_directional_derivative(hidden: str, output: str, loss: str) -> None:
    """The whole gradient projected on a random direction equals the numeric slope."""
    net, x, y = _problem(hidden, output, loss, seed=2)
    _, grad_w, grad_b = loss_and_gradients(net, x, y)
    rng = np.random.default_rng(3)
    directions = [rng.standard_normal(p.shape) for p in net.weights + net.biases]
    analytic = sum(float(np.sum(g * d)) for g, d in zip(grad_w + grad_b, directions, strict=True))
    eps = 1e-6
    values = []
    for sign in (1, -1):
        moved = net.copy()
        for p, d in zip(moved.weights + moved.biases, directions, strict=True):
            p += sign * eps * d
        values.append(compute_loss(moved, x, y))
    numeric = (values[0] - values[1]) / (2 * eps)
    assert analytic == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("output,loss", [("softmax", "cross_entropy"), ("sigmoid", "mse")])
def test_losses_equal_the_seed_formulas(output: str, loss: str) -> None:
    """Loss values are the seed's (-sum(onehot log(p+1e-15))/m and sum((p-onehot)^2)/m)."""
    rng = np.random.default_rng(4)
    p = rng.random((16, 10))
    if output == "softmax":
        p /= p.sum(axis=1, keepdims=True)
    p[0, :] = 0.0  # log(0) must be guarded exactly as the seed does
    y = rng.integers(0, 10, 16)
    for name in ("cross_entropy", "mse"):
        assert loss_value(name, p, y) == pytest.approx(_seed_loss(name, p, y), rel=1e-12)


def test_softmax_cross_entropy_gradient_is_p_minus_onehot() -> None:
    """For softmax + CE the output delta is the seed's (p - onehot) / m."""
    net, x, y = _problem("relu", "softmax", "cross_entropy")
    _, grad_w, _ = loss_and_gradients(net, x, y)
    p = net.predict_proba(x)
    hidden = x
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        hidden = np.maximum(hidden @ w + b, 0)
    onehot = np.eye(10)[y]
    np.testing.assert_allclose(grad_w[-1], hidden.T @ (p - onehot) / len(y), rtol=1e-10)


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "tanh", "relu", "linear"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_are_safe_on_extreme_inputs(name: str, dtype: type) -> None:
    """No overflow, invalid or divide warnings and finite outputs for scores of +-1e4."""
    z: np.ndarray = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        out = ACTIVATIONS[name](z, np.empty_like(z))
    assert np.isfinite(out).all()
    if name == "sigmoid":
        assert out[0, 0] == 0.0 and out[0, -1] == 1.0 and out[0, 2] == 0.5
        assert out[0, 1] == pytest.approx(np.exp(-50.0), rel=1e-5)  # relative precision kept
    if name == "softmax":
        assert out.sum() == pytest.approx(1.0) and out[0, -1] == pytest.approx(1.0)


def test_huge_scores_give_finite_loss_and_gradient() -> None:
    """Saturated outputs (p = 0 for the true class) keep the loss finite: log(0) is guarded."""
    net, x, y = _problem("relu", "sigmoid", "cross_entropy")
    net.biases[-1][...] = -1e4
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        loss, grad_w, _ = loss_and_gradients(net, x, y)
    assert loss == pytest.approx(-np.log(1e-15))
    assert all(np.isfinite(g).all() for g in grad_w)
