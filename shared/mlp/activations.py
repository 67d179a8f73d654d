"""Activation functions, written to work in place on preallocated buffers.

Every function takes ``z`` of shape ``(batch, units)`` and writes into ``out`` (which may be
``z`` itself), so the training loop allocates nothing per batch. All of them are safe for any
finite input: the sigmoid never evaluates ``exp`` of a positive number and the softmax
subtracts the row maximum first, so large scores give no overflow warnings.

Hidden-layer derivatives are expressed through the activation *output* ``a`` (relu: a > 0,
sigmoid: a (1 - a), tanh: 1 - a^2), so the forward pass only has to keep one array per layer.
"""

from collections.abc import Callable

import numpy as np


def relu(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """max(z, 0) elementwise into ``out``."""
    return np.maximum(z, 0, out=out)


def sigmoid(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) computed as exp(-log(1 + exp(-z))) via ``logaddexp``.

    ``logaddexp(0, -z)`` is evaluated without overflow for any z, and the final ``exp`` gets
    a non-positive argument, so there is neither overflow nor a loss of relative precision
    for very negative z (where the naive form underflows through 1 / inf).
    """
    np.negative(z, out=out)
    np.logaddexp(0, out, out=out)
    np.negative(out, out=out)
    return np.exp(out, out=out)


def tanh(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """tanh(z) elementwise into ``out``."""
    return np.tanh(z, out=out)


def linear(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The identity (copies ``z`` into ``out`` unless they are the same array)."""
    if out is not z:
        np.copyto(out, z)
    return out


def softmax(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``z`` (batch, classes) into ``out``, stabilised by the row max."""
    row = np.maximum.reduce(z, axis=1, keepdims=True)
    np.subtract(z, row, out=out)
    np.exp(out, out=out)
    np.add.reduce(out, axis=1, keepdims=True, out=row)
    return np.divide(out, row, out=out)


ACTIVATIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "relu": relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "linear": linear,
    "softmax": softmax,
}


def hidden_forward(name: str, z: np.ndarray, mask: np.ndarray) -> None:
    """Apply the hidden activation to ``z`` (batch, units) in place, for training.

    For relu the 0/1 derivative is written to ``mask`` (same shape) and the activation is
    ``z * mask``: two fast SIMD passes where ``np.maximum`` is a slow one, and the backward
    pass reuses the mask. NaN stays NaN (``NaN > 0`` is False, but ``NaN * 0`` is NaN), so a
    diverging run is still detected.
    """
    if name == "relu":
        np.greater(z, 0, out=mask, casting="unsafe")
        np.multiply(z, mask, out=z)
    else:
        ACTIVATIONS[name](z, z)


def hidden_backward(name: str, a: np.ndarray, delta: np.ndarray, mask: np.ndarray) -> None:
    """Multiply ``delta`` (dL/da) in place by f'(z), given the activation output ``a``.

    ``a``, ``delta`` and ``mask`` all have shape (batch, units). For relu ``mask`` must hold
    the derivative written by :func:`hidden_forward`; otherwise it is scratch space.
    """
    if name == "sigmoid":
        np.subtract(1, a, out=mask)
        np.multiply(mask, a, out=mask)
    elif name == "tanh":
        np.multiply(a, a, out=mask)
        np.subtract(1, mask, out=mask)
    elif name != "relu":
        raise ValueError(f"unknown hidden activation {name!r}")
    np.multiply(delta, mask, out=delta)
