"""The MLP itself: an :class:`Architecture` (what to build) and a :class:`Network` (its weights).

Layout is batch-major, ``a_next = f(a @ W + b)`` with ``a`` of shape (batch, n_in), ``W``
(n_in, n_out) and ``b`` (n_out,), so a batch of images is a C-contiguous block of rows and
every product is one BLAS call without transposed copies.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.catalog import (
    HIDDEN_ACTIVATIONS,
    architecture_problem,
    normalise_activation,
)
from shared.exceptions import InvalidArchitecture, InvalidInput
from shared.mlp.activations import ACTIVATIONS

DEFAULT_BATCH_SIZE = 8192
_ARCH_KEYS = ("layers", "hidden_activation", "output_activation", "loss")


@dataclass(frozen=True)
class Architecture:
    """Layer sizes (784 first, 10 last), activations and loss; validated on construction."""

    layers: tuple[int, ...]
    hidden_activation: str
    output_activation: str
    loss: str

    def __post_init__(self) -> None:
        if not isinstance(self.layers, tuple):
            raise InvalidArchitecture(
                "layers must be a tuple of integers; build with Architecture.create(...)."
            )
        problem = architecture_problem(
            self.layers, self.hidden_activation, self.output_activation, self.loss
        )
        # The API validates with the same rules; hidden names must already be normalised.
        if problem is None and self.hidden_activation != normalise_activation(
            self.hidden_activation
        ):
            problem = f"hidden_activation must be one of {', '.join(HIDDEN_ACTIVATIONS)}."
        if problem:
            raise InvalidArchitecture(problem)

    @classmethod
    def create(
        cls,
        layers: Iterable[int],
        hidden_activation: str = "relu",
        output_activation: str = "softmax",
        loss: str = "cross_entropy",
    ) -> "Architecture":
        """Build a validated architecture; names are case-insensitive (the seed's "reLU")."""
        if isinstance(layers, str | bytes | dict) or not isinstance(layers, Iterable):
            raise InvalidArchitecture(f"layers must be a list of integers, not {layers!r}.")
        sizes = tuple(_as_int(v) for v in layers)
        return cls(
            layers=sizes,
            hidden_activation=_normalise(hidden_activation),
            output_activation=_normalise(output_activation),
            loss=_normalise(loss),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with keys layers, hidden_activation, output_activation, loss."""
        return {
            "layers": list(self.layers),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
            "loss": self.loss,
        }

    @classmethod
    def from_dict(cls, d: Any) -> "Architecture":
        """Inverse of :meth:`to_dict`; exactly those four keys are accepted."""
        if not isinstance(d, dict):
            raise InvalidArchitecture(f"an architecture must be an object, not {type(d).__name__}.")
        if set(d) != set(_ARCH_KEYS):
            raise InvalidArchitecture(
                f"an architecture needs exactly the keys {list(_ARCH_KEYS)}; got {sorted(d)}."
            )
        return cls.create(**{k: d[k] for k in _ARCH_KEYS})

    @property
    def n_params(self) -> int:
        """Number of trainable numbers (weights and biases)."""
        return sum(a * b + b for a, b in zip(self.layers[:-1], self.layers[1:], strict=True))

    @property
    def n_layers(self) -> int:
        """Number of weight layers (``len(layers) - 1``)."""
        return len(self.layers) - 1


def _views(flat: np.ndarray, shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    views, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        views.append(flat[offset : offset + size].reshape(shape))
        offset += size
    return views


def _normalise(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidArchitecture(f"activation and loss names must be strings, not {name!r}.")
    return name.strip().lower()


def _as_int(value: object) -> int:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidArchitecture(f"layer sizes must be positive integers; got {value!r}.")


class Network:
    """An architecture with its parameters.

    ``weights[i]`` is ``(layers[i], layers[i + 1])`` and ``biases[i]`` is ``(layers[i + 1],)``.
    Parameters are float32 in the product; a float64 copy (:meth:`astype`) is used by the
    gradient checks. All parameter arrays share one dtype.
    """

    def __init__(
        self, arch: Architecture, weights: list[np.ndarray], biases: list[np.ndarray]
    ) -> None:
        if len(weights) != arch.n_layers or len(biases) != arch.n_layers:
            raise InvalidArchitecture(
                f"{arch.n_layers} weight layers expected; got {len(weights)} weights "
                f"and {len(biases)} biases."
            )
        dtype = weights[0].dtype
        if dtype not in (np.float32, np.float64):
            raise InvalidArchitecture(f"parameters must be float32 or float64, not {dtype}.")
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            n_in, n_out = arch.layers[i], arch.layers[i + 1]
            if w.shape != (n_in, n_out) or b.shape != (n_out,):
                raise InvalidArchitecture(
                    f"layer {i} needs W{i} {(n_in, n_out)} and b{i} {(n_out,)}; "
                    f"got {w.shape} and {b.shape}."
                )
            if w.dtype != dtype or b.dtype != dtype:
                raise InvalidArchitecture("all weights and biases must share one dtype.")
        self.arch = arch
        self.weights = list(weights)
        self.biases = list(biases)
        self._flat = np.empty(0, dtype=dtype)
        self.flat_parameters()

    def flat_parameters(self) -> np.ndarray:
        """All parameters as one contiguous 1-d array; ``weights``/``biases`` are views into it.

        The training loop updates this array with a single in-place subtraction. If a caller
        replaced an entry of ``weights`` or ``biases`` by a new array, the parameters are
        packed again (the values are kept).
        """
        flat = self._flat
        params = [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]
        if all(p.base is flat for p in params) and flat.size == sum(p.size for p in params):
            return flat
        flat = np.empty(sum(p.size for p in params), dtype=self.weights[0].dtype)
        views = _views(flat, [p.shape for p in params])
        for view, p in zip(views, params, strict=True):
            view[...] = p
        self.weights = views[0::2]
        self.biases = views[1::2]
        self._flat = flat
        return flat

    def flat_views(self, flat: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Views of ``flat`` (laid out like :meth:`flat_parameters`) shaped as weights, biases."""
        views = _views(
            flat, [p.shape for pair in zip(self.weights, self.biases, strict=True) for p in pair]
        )
        return views[0::2], views[1::2]

    @classmethod
    def initialize(cls, arch: Architecture, rng: np.random.Generator) -> "Network":
        """He initialisation as in the seed: W ~ N(0, 1) * sqrt(2 / n_in), b = 0 (float32)."""
        weights, biases = [], []
        for n_in, n_out in zip(arch.layers[:-1], arch.layers[1:], strict=True):
            w = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
            weights.append(w.astype(np.float32))
            biases.append(np.zeros(n_out, dtype=np.float32))
        return cls(arch, weights, biases)

    @property
    def dtype(self) -> np.dtype:
        """The parameters' dtype (float32 unless converted with :meth:`astype`)."""
        return self.weights[0].dtype

    def astype(self, dtype: type[np.floating] | np.dtype) -> "Network":
        """A copy with parameters converted to ``dtype`` (float32 or float64)."""
        return Network(
            self.arch,
            [w.astype(dtype) for w in self.weights],
            [b.astype(dtype) for b in self.biases],
        )

    def copy(self) -> "Network":
        """A deep copy: training the copy leaves this network untouched."""
        return self.astype(self.dtype)

    def predict_proba(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Output activations: ``x`` (n, 784) floats in [0, 1] -> (n, 10) in the network dtype.

        For a softmax output the rows are probabilities; for sigmoid and linear outputs they
        are the raw activations the network was trained to produce.
        """
        return self._outputs(x, batch_size, apply_output=True)

    def predict(self, x: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Predicted labels (n,) int64 for ``x`` (n, 784).

        The argmax is taken over the output-layer scores before the output activation: every
        allowed output activation is monotonic, so the labels are those of
        :meth:`predict_proba`, except that saturated float32 sigmoids (several exactly 1.0)
        cannot tie. Skipping the softmax also saves time.
        """
        scores = self._outputs(x, batch_size, apply_output=False)
        return np.argmax(scores, axis=1)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Fraction of ``x`` (n, 784) whose predicted label equals ``y`` (n,)."""
        y = np.asarray(y)
        if y.shape != (x.shape[0],):
            raise InvalidInput(f"labels have shape {y.shape} for {x.shape[0]} images.")
        if x.shape[0] == 0:
            raise InvalidInput("cannot measure accuracy on zero images.")
        return float(np.count_nonzero(self.predict(x) == y) / x.shape[0])

    def _outputs(self, x: np.ndarray, batch_size: int, apply_output: bool) -> np.ndarray:
        """Forward pass in chunks of ``batch_size`` rows with buffers reused across chunks."""
        n_in = self.arch.layers[0]
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != n_in:
            shape = getattr(x, "shape", None)
            raise InvalidInput(f"images must be an (N, {n_in}) array; got shape {shape}.")
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, not {batch_size}.")
        n = x.shape[0]
        dtype = self.dtype
        chunk = max(1, min(n, batch_size))
        hidden = [np.empty((chunk, k), dtype=dtype) for k in self.arch.layers[1:-1]]
        out = np.empty((n, self.arch.layers[-1]), dtype=dtype)
        hidden_act = ACTIVATIONS[self.arch.hidden_activation]
        last = self.arch.n_layers - 1
        for start in range(0, n, chunk):
            a = x[start : start + chunk]
            if a.dtype != dtype:
                a = a.astype(dtype)
            m = a.shape[0]
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                z = out[start : start + m] if i == last else hidden[i][:m]
                np.matmul(a, w, out=z)
                z += b
                if i < last:
                    hidden_act(z, z)
                a = z
        if apply_output:
            ACTIVATIONS[self.arch.output_activation](out, out)
        return out
