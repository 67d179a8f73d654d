"""Mini-batch SGD for :class:`~shared.mlp.network.Network`, plus the gradient it follows.

The loop is the seed's (shuffle each epoch, batches of ``batch_size``, plain SGD, full
training-set accuracy after every epoch), rearranged to do no per-batch allocation:

* one set of buffers per run (:class:`_Workspace`): activations, deltas and gradients for a
  full batch; a short last batch uses leading-row views of them;
* the batch is gathered with ``np.take(..., out=)`` through the epoch's permutation instead
  of materialising a shuffled copy of the training set (which would add ~190 MB for 60k);
* matrix products write into those buffers (``np.matmul(..., out=)``), activations and their
  derivatives run in place, one-hot targets are never built;
* the learning rate is folded into the output delta, so the backward pass already produces
  ``lr * gradient``; gradients share one flat layout with the network's parameters, so the
  update is a single in-place subtraction;
* relu keeps its 0/1 derivative mask from the forward pass for the backward pass.

Randomness comes only from the ``rng`` passed in: one permutation per epoch. Its state after
epoch k is what :class:`TrainState` records, so resuming from it replays the same batches.

Threads: the batch loop always runs with 1 BLAS thread, whatever the process is configured
with. Multi-threaded OpenBLAS splits the products differently and changes the low bits of the
results (measured: weights differ by ~2e-8 after 2 epochs with 2 threads), so a job's result
would depend on the worker's thread setting and a resumed job could drift from an
uninterrupted one. One thread also keeps epochs steady when other processes compete for the
cores (with 2 threads, epochs of 0.5 s took 2-12 s on a busy machine), at the price of ~20% on
an idle 2-core machine. The process's BLAS limit (set by the worker with threadpoolctl) is read
as the number of cores training may use: with 2 or more, each epoch's evaluation (full
training set + validation set, about a third of an epoch's arithmetic) runs on a second Python
thread, overlapping the next epoch's batches; with 1 it runs inline. Results are identical
either way, and the caller's limit is restored on return.
"""

import logging
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from shared.exceptions import InvalidInput, TrainingCancelled, TrainingDiverged
from shared.mlp.activations import ACTIVATIONS, hidden_backward, hidden_forward
from shared.mlp.losses import batch_loss, output_delta
from shared.mlp.network import Network

logger = logging.getLogger(__name__)

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


@dataclass
class EpochStats:
    """What happened in one epoch (``epoch`` is 1-based)."""

    epoch: int
    loss: float
    train_accuracy: float
    val_accuracy: float | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields."""
        return asdict(self)


@dataclass
class TrainState:
    """Everything needed to resume: the network after ``epoch`` completed epochs and the
    generator state to continue from (JSON-serialisable ``bit_generator.state``)."""

    network: Network
    epoch: int
    rng_state: dict[str, Any]

    def rng(self) -> np.random.Generator:
        """A new Generator positioned exactly where training left off."""
        return restore_rng(self.rng_state)


def rng_state_of(rng: np.random.Generator) -> dict[str, Any]:
    """``rng.bit_generator.state`` as plain JSON types (arrays become lists)."""
    return to_json_types(rng.bit_generator.state)


def restore_rng(state: dict[str, Any]) -> np.random.Generator:
    """A Generator set to ``state`` (from :func:`rng_state_of`); bad states -> InvalidInput."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise InvalidInput(f"unsupported random generator state {name!r}.")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise InvalidInput(f"the {name} generator state is malformed: {exc}.") from exc
    return np.random.Generator(bit_generator)


def to_json_types(value: Any) -> Any:
    """``value`` with numpy arrays and scalars replaced by lists and Python numbers."""
    if isinstance(value, dict):
        return {str(k): to_json_types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_types(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Workspace:
    """Preallocated buffers for forward and backward passes of up to ``batch_size`` rows.

    Gradients live in one flat array laid out like ``network.flat_parameters()``, so an SGD
    step is a single in-place subtraction.
    """

    def __init__(self, network: Network, batch_size: int) -> None:
        arch = network.arch
        dtype = network.dtype
        self.network = network
        self.params = network.flat_parameters()
        self.grads = np.zeros_like(self.params)
        self.grad_w, self.grad_b = network.flat_views(self.grads)
        self.acts = [np.empty((batch_size, k), dtype=dtype) for k in arch.layers[1:]]
        self.deltas = [np.empty((batch_size, k), dtype=dtype) for k in arch.layers[1:]]
        # Per hidden layer: the relu derivative mask, or scratch space for sigmoid/tanh.
        self.masks = [np.empty((batch_size, k), dtype=dtype) for k in arch.layers[1:-1]]
        self.ones = np.ones(batch_size, dtype=dtype)
        self.row_starts = np.arange(0, batch_size * arch.layers[-1], arch.layers[-1])
        self._hidden = arch.hidden_activation
        self._output = ACTIVATIONS[arch.output_activation]

    def true_index(self, y: np.ndarray) -> np.ndarray:
        """Positions of the true-class scores in the flattened (m, 10) output, for ``y`` (m,)."""
        return self.row_starts[: y.shape[0]] + y

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Output activations (m, 10), a view into the workspace, for ``x`` (m, 784)."""
        net = self.network
        m = x.shape[0]
        last = len(net.weights) - 1
        a = x
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
            z = self.acts[i][:m]
            np.matmul(a, w, out=z)
            np.add(z, b, out=z)
            if i == last:
                self._output(z, z)
            else:
                hidden_forward(self._hidden, z, self.masks[i][:m])
            a = z
        return a

    def backward(self, x: np.ndarray, true_idx: np.ndarray, scale: float) -> None:
        """Fill ``grads`` with ``scale`` * dL/dparams after :meth:`forward` on ``x`` (m, 784)."""
        net = self.network
        arch = net.arch
        m = x.shape[0]
        last = len(net.weights) - 1
        delta = self.deltas[last][:m]
        output_delta(arch.output_activation, arch.loss, self.acts[last][:m], true_idx, scale, delta)
        for i in range(last, -1, -1):
            a_prev = x if i == 0 else self.acts[i - 1][:m]
            np.matmul(a_prev.T, delta, out=self.grad_w[i])
            # A (1, m) @ (m, n) product sums the rows faster than np.add.reduce.
            np.matmul(self.ones[:m], delta, out=self.grad_b[i])
            if i > 0:
                prev = self.deltas[i - 1][:m]
                np.matmul(delta, net.weights[i].T, out=prev)
                hidden_backward(self._hidden, a_prev, prev, self.masks[i - 1][:m])
                delta = prev

    def sgd_step(self, x: np.ndarray, y: np.ndarray, learning_rate: float) -> float:
        """One SGD update on ``x`` (m, 784), ``y`` (m,); returns the batch loss before it."""
        true_idx = self.true_index(y)
        p = self.forward(x)
        loss = batch_loss(self.network.arch.loss, p, true_idx)
        self.backward(x, true_idx, learning_rate)
        np.subtract(self.params, self.grads, out=self.params)
        return loss


def compute_loss(network: Network, x: np.ndarray, y: np.ndarray) -> float:
    """Mean loss of ``network`` on ``x`` (n, 784) with labels ``y`` (n,), in one batch."""
    ws = _Workspace(network, x.shape[0])
    y = np.asarray(y, dtype=np.intp)
    p = ws.forward(x.astype(network.dtype, copy=False))
    return batch_loss(network.arch.loss, p, ws.true_index(y))


def loss_and_gradients(
    network: Network, x: np.ndarray, y: np.ndarray
) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    """Loss and its exact gradient for ``x`` (n, 784), ``y`` (n,) as one batch.

    Returns ``(loss, dW, db)`` with ``dW[i]`` shaped like ``weights[i]`` and ``db[i]`` like
    ``biases[i]``, in the network's dtype (use a float64 network for finite-difference checks).
    This is the code path of the training loop, with the learning rate set to 1.
    """
    ws = _Workspace(network, x.shape[0])
    x = x.astype(network.dtype, copy=False)
    true_idx = ws.true_index(np.asarray(y, dtype=np.intp))
    p = ws.forward(x)
    loss = batch_loss(network.arch.loss, p, true_idx)
    ws.backward(x, true_idx, 1.0)
    return loss, [g.copy() for g in ws.grad_w], [g.copy() for g in ws.grad_b]


def train(
    network: Network,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    learning_rate: float,
    batch_size: int,
    rng: np.random.Generator,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    start_epoch: int = 0,
    on_epoch: Callable[[EpochStats, TrainState], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[EpochStats]:
    """Train ``network`` in place for epochs ``start_epoch + 1 .. epochs``; return their stats.

    ``x_train`` (n, 784) floats in [0, 1] (float32 to avoid a converted copy), ``y_train``
    (n,) integer labels; ``x_val``/``y_val`` likewise (both or neither), scored after each
    epoch. ``rng`` drives the per-epoch shuffles; to resume from a :class:`TrainState` pass its
    network, ``state.rng()`` and ``start_epoch=state.epoch``.

    ``on_epoch(stats, state)`` runs after every epoch; ``state`` holds a copy of the network,
    so it may be kept or serialised at leisure. ``should_stop()`` is called before every batch
    (keep it cheap, e.g. read a flag); when it returns True, :class:`TrainingCancelled` is
    raised. A NaN or infinite loss raises :class:`TrainingDiverged`.
    """
    x_train, y_train = _check_xy(network, x_train, y_train, "training")
    if (x_val is None) != (y_val is None):
        raise InvalidInput("x_val and y_val must be given together.")
    if x_val is not None and y_val is not None:
        x_val, y_val = _check_xy(network, x_val, y_val, "validation")
    _check_schedule(epochs, start_epoch, learning_rate, batch_size)

    n = x_train.shape[0]
    batch = min(batch_size, n)
    ws = _Workspace(network, batch)
    x_buf = np.empty((batch, x_train.shape[1]), dtype=network.dtype)
    y_buf = np.empty(batch, dtype=np.intp)

    # One BLAS thread for the batch loop, evaluation in parallel if allowed (module docstring).
    background = _blas_thread_limit() >= 2
    with (
        threadpool_limits(limits=1, user_api="blas"),
        _Evaluator(x_train, y_train, x_val, y_val, on_epoch, background) as evaluator,
        # Overflow/invalid warnings only occur on the way to a non-finite loss, which is
        # checked after every batch and reported as TrainingDiverged: they would be noise.
        np.errstate(over="ignore", invalid="ignore"),
    ):
        for epoch in range(start_epoch + 1, epochs + 1):
            started = time.perf_counter()
            order = rng.permutation(n)
            total_loss = 0.0
            n_batches = 0
            for start in range(0, n, batch):
                evaluator.poll()
                if should_stop is not None and should_stop():
                    evaluator.finish()
                    raise TrainingCancelled(
                        f"Training was cancelled during epoch {epoch} of {epochs}."
                    )
                idx = order[start : start + batch]
                m = idx.shape[0]
                xb = x_buf[:m]
                yb = y_buf[:m]
                x_train.take(idx, axis=0, out=xb, mode="clip")
                y_train.take(idx, out=yb, mode="clip")
                loss = ws.sgd_step(xb, yb, learning_rate)
                if not math.isfinite(loss):
                    evaluator.finish()
                    raise _diverged(epoch, f"the loss became {loss}", learning_rate)
                total_loss += loss
                n_batches += 1
            if not all(np.isfinite(w).all() for w in network.weights):
                evaluator.finish()
                raise _diverged(epoch, "the weights became NaN or infinite", learning_rate)
            state = TrainState(network.copy(), epoch, rng_state_of(rng))
            evaluator.submit(state, total_loss / n_batches, time.perf_counter() - started)
        evaluator.finish()
    return evaluator.history


def _blas_thread_limit() -> int:
    """The BLAS thread limit in force (the CPU count if no BLAS library reports one)."""
    limits = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return max(limits) if limits else os.cpu_count() or 1


class _Evaluator:
    """Scores each finished epoch, on a background thread if asked, and reports it in order.

    The scoring (full training set, then validation set) uses the epoch's network copy, so
    in the background the next epoch trains meanwhile. ``on_epoch`` is always called from
    the training thread: at the first batch boundary after the scores are ready, or at
    :meth:`finish`.
    """

    def __init__(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
        on_epoch: Callable[[EpochStats, TrainState], None] | None,
        background: bool,
    ) -> None:
        self._data = (x_train, y_train, x_val, y_val)
        self._on_epoch = on_epoch
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlp-eval") if background else None
        )
        self._pending: tuple[Future[EpochStats], TrainState] | None = None
        self.history: list[EpochStats] = []

    def __enter__(self) -> "_Evaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, state: TrainState, loss: float, train_seconds: float) -> None:
        """Queue the scoring of ``state.network``; reports the previous epoch first."""
        self.finish()
        if self._pool is not None:
            future = self._pool.submit(self._score, state, loss, train_seconds)
        else:
            future = Future()
            future.set_result(self._score(state, loss, train_seconds))
        self._pending = (future, state)

    def poll(self) -> None:
        """Report the pending epoch if its scores are ready (cheap; call between batches)."""
        if self._pending is not None and self._pending[0].done():
            self.finish()

    def finish(self) -> None:
        """Wait for the pending epoch's scores and report them."""
        if self._pending is None:
            return
        future, state = self._pending
        self._pending = None
        stats = future.result()
        self.history.append(stats)
        logger.debug("epoch %s", stats)
        if self._on_epoch is not None:
            self._on_epoch(stats, state)

    def _score(self, state: TrainState, loss: float, train_seconds: float) -> EpochStats:
        started = time.perf_counter()
        x_train, y_train, x_val, y_val = self._data
        network = state.network
        train_accuracy = network.accuracy(x_train, y_train)
        val_accuracy = None
        if x_val is not None and y_val is not None:
            val_accuracy = network.accuracy(x_val, y_val)
        return EpochStats(
            epoch=state.epoch,
            loss=loss,
            train_accuracy=train_accuracy,
            val_accuracy=val_accuracy,
            seconds=train_seconds + time.perf_counter() - started,
        )


def _diverged(epoch: int, what: str, learning_rate: float) -> TrainingDiverged:
    return TrainingDiverged(
        f"Training diverged in epoch {epoch}: {what} (learning rate {learning_rate:g}); "
        "try a smaller learning rate."
    )


def _check_xy(
    network: Network, x: np.ndarray, y: np.ndarray, what: str
) -> tuple[np.ndarray, np.ndarray]:
    n_in, n_out = network.arch.layers[0], network.arch.layers[-1]
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != n_in or x.shape[0] == 0:
        shape = getattr(x, "shape", None)
        raise InvalidInput(f"{what} images must be a non-empty (N, {n_in}) array; got {shape}.")
    if x.dtype.kind != "f":
        raise InvalidInput(f"{what} images must be floats in [0, 1], not {x.dtype}.")
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
        raise InvalidInput(
            f"{what} labels must be {x.shape[0]} integers; got {y.dtype} of shape {y.shape}."
        )
    if int(y.min()) < 0 or int(y.max()) >= n_out:
        raise InvalidInput(f"{what} labels must lie in 0..{n_out - 1}.")
    return np.ascontiguousarray(x, dtype=network.dtype), y.astype(np.intp)


def _check_schedule(epochs: int, start_epoch: int, learning_rate: float, batch_size: int) -> None:
    for name, value in (("epochs", epochs), ("start_epoch", start_epoch)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise InvalidInput(f"{name} must be a non-negative integer, not {value!r}.")
    if start_epoch > epochs:
        raise InvalidInput(f"start_epoch {start_epoch} is past the last epoch {epochs}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise InvalidInput(f"batch_size must be a positive integer, not {batch_size!r}.")
    if batch_size < 1:
        raise InvalidInput(f"batch_size must be a positive integer, not {batch_size!r}.")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise InvalidInput(f"learning_rate must be a positive number, not {learning_rate!r}.")
