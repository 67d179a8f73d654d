"""Loss values and the gradient of the loss with respect to the output-layer scores.

Both losses are the seed's, with ``m`` the number of samples in the batch and the sum taken
over classes (``onehot`` is the one-hot encoding of the integer labels ``y``):

* ``cross_entropy`` = -sum(onehot * log(p + 1e-15)) / m
* ``mse``           =  sum((p - onehot) ** 2) / m

``p`` is the output activation (softmax, sigmoid or linear) of the scores ``z``. The seed
always back-propagated ``p - onehot``, which is dL/dz only for softmax + cross-entropy.
:func:`output_delta` returns the right dL/dz for every allowed combination:

* softmax + CE: ``(p - onehot) / m``
* sigmoid + CE: only the true class carries loss, ``dz_y = -(1 - p_y) / m``, 0 elsewhere
* any + MSE: ``g = 2 (p - onehot) / m`` pushed through the output Jacobian: ``g`` (linear),
  ``g p (1 - p)`` (sigmoid), ``p (g - sum(g p))`` (softmax, the full Jacobian-vector product)

For cross-entropy the derivative of the ``1e-15`` guard itself is left out (it changes the
gradient by a relative ``1e-15 / p_y``): with it, the gradient of a sample whose true-class
probability underflowed would vanish and that sample could never be learned.

Linear output + cross-entropy is refused by :class:`~shared.mlp.network.Architecture`:
the log of a raw score is meaningless.

No one-hot matrix is ever built: the labels index the true-class entries directly.
"""

import numpy as np

LOG_EPS = 1e-15


def true_class_index(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Positions of the true-class entries in ``p.ravel()`` for labels ``y`` (m,)."""
    return np.arange(0, y.shape[0] * n_classes, n_classes) + y


def loss_value(loss: str, p: np.ndarray, y: np.ndarray) -> float:
    """Mean loss of a batch: ``p`` (m, classes) output activations, ``y`` (m,) int labels."""
    return batch_loss(loss, p, true_class_index(y, p.shape[1]))


def batch_loss(loss: str, p: np.ndarray, true_idx: np.ndarray) -> float:
    """Mean loss of ``p`` (m, classes), C-contiguous, given :func:`true_class_index`."""
    m = p.shape[0]
    if loss == "cross_entropy":
        true_p = p.ravel().take(true_idx)
        true_p += p.dtype.type(LOG_EPS)
        np.log(true_p, out=true_p)
        return float(-np.add.reduce(true_p) / m)
    if loss == "mse":
        diff = p.copy()
        diff.ravel()[true_idx] -= 1
        flat = diff.ravel()
        return float(np.dot(flat, flat) / m)
    raise ValueError(f"unknown loss {loss!r}")


def output_delta(
    output_activation: str,
    loss: str,
    p: np.ndarray,
    true_idx: np.ndarray,
    scale: float,
    out: np.ndarray,
) -> None:
    """Write ``scale * dL/dz`` into ``out`` (m, classes), C-contiguous like ``p``.

    ``p`` (m, classes) are the output activations, ``true_idx`` comes from
    :func:`true_class_index`; ``scale`` lets the training loop fold the learning rate in.
    ``out`` must not be ``p``.
    """
    m = p.shape[0]
    k = p.dtype.type(scale / m)
    flat_out = out.ravel()
    if loss == "cross_entropy":
        if output_activation == "softmax":
            np.multiply(p, k, out=out)
            flat_out[true_idx] -= k
        elif output_activation == "sigmoid":
            out.fill(0)
            flat_out[true_idx] = (p.ravel().take(true_idx) - 1) * k
        else:
            raise ValueError(f"{output_activation} output cannot be paired with cross_entropy")
        return
    if loss != "mse":
        raise ValueError(f"unknown loss {loss!r}")
    np.multiply(p, 2 * k, out=out)
    flat_out[true_idx] -= 2 * k
    if output_activation == "linear":
        return
    if output_activation == "sigmoid":
        out *= p
        out *= 1 - p
        return
    if output_activation == "softmax":
        gp = np.einsum("ij,ij->i", out, p)[:, None]
        out -= gp
        out *= p
        return
    raise ValueError(f"unknown output activation {output_activation!r}")
