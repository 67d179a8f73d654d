"""The training loop: learning, determinism, resuming, cancellation and divergence."""

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from shared.datasets import Dataset, load_builtin
from shared.exceptions import InvalidInput, TrainingCancelled, TrainingDiverged
from shared.mlp import (
    Architecture,
    EpochStats,
    Network,
    TrainState,
    state_from_bytes,
    state_to_bytes,
    train,
)
from tests.shared.test_mlp_gradients import COMBINATIONS

# Learning rates for 3 epochs of batch-32 SGD on a 784-32-10 net. MSE gradients are small
# (softmax + MSE damps them twice), so MSE with a squashing output gets a larger rate; a
# linear output is unbounded and diverges with tanh hidden units above ~0.03.
LEARNING_RATES = {
    ("softmax", "cross_entropy"): 0.1,
    ("softmax", "mse"): 0.3,
    ("sigmoid", "cross_entropy"): 0.1,
    ("sigmoid", "mse"): 0.3,
    ("linear", "mse"): 0.01,
}


@pytest.fixture(scope="module")
def sample() -> Dataset:
    return load_builtin("mnist-sample")


def _fit(
    sample: Dataset, arch: Architecture, seed: int = 0, epochs: int = 2, **kwargs: object
) -> tuple[Network, list[EpochStats]]:
    rng = np.random.default_rng(seed)
    net = Network.initialize(arch, rng)
    options: dict = {"learning_rate": 0.1, "batch_size": 64, **kwargs}
    history = train(net, sample.x_train, sample.y_train, epochs=epochs, rng=rng, **options)
    return net, history


@pytest.mark.parametrize("hidden,output,loss", COMBINATIONS)
def test_every_combination_learns(sample: Dataset, hidden: str, output: str, loss: str) -> None:
    """Each of the 15 combinations gets well above chance (10%) on held-out digits."""
    # Sigmoid output + the seed's cross-entropy only rewards the true class (nothing pushes
    # the other outputs down), so it plateaus far lower (~0.4-0.55) than the rest (~0.8-0.9).
    arch = Architecture.create([784, 32, 10], hidden, output, loss)
    _, history = _fit(
        sample,
        arch,
        epochs=3,
        learning_rate=LEARNING_RATES[(output, loss)],
        batch_size=32,
        x_val=sample.x_test,
        y_val=sample.y_test,
    )
    floor = 0.3 if (output, loss) == ("sigmoid", "cross_entropy") else 0.6
    assert history[-1].val_accuracy is not None and history[-1].val_accuracy > floor
    assert history[-1].train_accuracy > floor


def test_history_reports_each_epoch(sample: Dataset) -> None:
    """train returns one EpochStats per epoch with 1-based numbers, loss, both accuracies."""
    arch = Architecture.create([784, 16, 10])
    seen: list[tuple[int, int]] = []
    _, history = _fit(
        sample,
        arch,
        epochs=3,
        x_val=sample.x_test,
        y_val=sample.y_test,
        on_epoch=lambda stats, state: seen.append((stats.epoch, state.epoch)),
    )
    assert [s.epoch for s in history] == [1, 2, 3]
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert history[0].loss > history[-1].loss > 0
    for s in history:
        assert 0 <= s.train_accuracy <= 1 and s.val_accuracy is not None and s.seconds > 0
        assert set(s.to_dict()) == {"epoch", "loss", "train_accuracy", "val_accuracy", "seconds"}


def test_train_accuracy_is_measured_on_the_whole_training_set(sample: Dataset) -> None:
    """The recorded train accuracy is the end-of-epoch network's on every training image."""
    net, history = _fit(sample, Architecture.create([784, 16, 10]), epochs=1)
    assert history[-1].train_accuracy == net.accuracy(sample.x_train, sample.y_train)
    assert history[-1].val_accuracy is None


def test_same_seed_gives_identical_weights(sample: Dataset) -> None:
    """All randomness comes from the Generator: same seed, bit-identical weights."""
    arch = Architecture.create([784, 16, 10], "tanh")
    a, _ = _fit(sample, arch, seed=7)
    b, _ = _fit(sample, arch, seed=7)
    c, _ = _fit(sample, arch, seed=8)
    for wa, wb, wc in zip(a.weights, b.weights, c.weights, strict=True):
        assert np.array_equal(wa, wb)
        assert not np.array_equal(wa, wc)


def test_resume_from_checkpoint_matches_uninterrupted_run(sample: Dataset) -> None:
    """Resuming from the serialised state after epoch 2 ends bit-identical to one full run."""
    arch = Architecture.create([784, 16, 12, 10])
    saved: dict[int, bytes] = {}
    full, full_history = _fit(
        sample,
        arch,
        seed=3,
        epochs=4,
        on_epoch=lambda stats, state: saved.__setitem__(state.epoch, state_to_bytes(state)),
    )
    state = state_from_bytes(saved[2])
    assert state.epoch == 2
    resumed_history = train(
        state.network,
        sample.x_train,
        sample.y_train,
        epochs=4,
        learning_rate=0.1,
        batch_size=64,
        rng=state.rng(),
        start_epoch=state.epoch,
    )
    assert [s.epoch for s in resumed_history] == [3, 4]
    assert [s.loss for s in resumed_history] == [s.loss for s in full_history[2:]]
    for wr, wf in zip(
        state.network.weights + state.network.biases, full.weights + full.biases, strict=True
    ):
        assert np.array_equal(wr, wf)


def test_state_given_to_on_epoch_is_a_snapshot(sample: Dataset) -> None:
    """The TrainState passed to on_epoch keeps that epoch's weights while training goes on."""
    states: list[TrainState] = []
    net, _ = _fit(
        sample,
        Architecture.create([784, 16, 10]),
        epochs=2,
        on_epoch=lambda stats, state: states.append(state),
    )
    assert not np.array_equal(states[0].network.weights[0], net.weights[0])
    assert np.array_equal(states[1].network.weights[0], net.weights[0])


def test_should_stop_cancels_between_batches(sample: Dataset) -> None:
    """should_stop returning True raises TrainingCancelled at the next batch boundary."""
    calls = 0

    def stop_after_ten() -> bool:
        nonlocal calls
        calls += 1
        return calls > 10

    with pytest.raises(TrainingCancelled, match="epoch 1"):
        _fit(sample, Architecture.create([784, 16, 10]), should_stop=stop_after_ten)
    assert calls == 11


def test_cancel_in_second_epoch_reports_the_first(sample: Dataset) -> None:
    """Epochs finished before a cancellation are still reported through on_epoch."""
    epochs_seen: list[int] = []
    batches_per_epoch = -(-sample.x_train.shape[0] // 64)
    calls = 0

    def stop_in_epoch_two() -> bool:
        nonlocal calls
        calls += 1
        return calls > batches_per_epoch + 5

    with pytest.raises(TrainingCancelled, match="epoch 2"):
        _fit(
            sample,
            Architecture.create([784, 16, 10]),
            epochs=3,
            should_stop=stop_in_epoch_two,
            on_epoch=lambda stats, state: epochs_seen.append(stats.epoch),
        )
    assert epochs_seen == [1]


# Softmax + CE has bounded output gradients (p - onehot), so only an absurd rate overflows
# float32; an unbounded linear output with MSE blows up quickly.
@pytest.mark.parametrize(
    "output,loss,rate", [("softmax", "cross_entropy", 1e20), ("linear", "mse", 1e3)]
)
def test_huge_learning_rate_raises_training_diverged(
    sample: Dataset, output: str, loss: str, rate: float
) -> None:
    """A learning rate that makes the loss NaN/inf raises TrainingDiverged naming the epoch."""
    arch = Architecture.create([784, 16, 10], "relu", output, loss)
    with pytest.raises(TrainingDiverged, match="epoch 1"):
        _fit(sample, arch, learning_rate=rate)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"epochs": -1},
        {"learning_rate": 0.0},
        {"learning_rate": float("nan")},
        {"batch_size": 0},
        {"start_epoch": 5},
    ],
)
def test_bad_schedule_is_rejected(sample: Dataset, kwargs: dict) -> None:
    """Nonsensical epochs, learning rate, batch size or start epoch raise InvalidInput."""
    with pytest.raises(InvalidInput):
        _fit(sample, Architecture.create([784, 10]), **kwargs)


def test_mismatched_data_is_rejected(sample: Dataset) -> None:
    """Labels that do not match the images, or out-of-range labels, raise InvalidInput."""
    net = Network.initialize(Architecture.create([784, 10]), np.random.default_rng(0))
    rng = np.random.default_rng(0)
    opts: dict[str, Any] = {"epochs": 1, "learning_rate": 0.1, "batch_size": 8, "rng": rng}
    with pytest.raises(InvalidInput, match="labels"):
        train(net, sample.x_train, sample.y_train[:-1], **opts)
    with pytest.raises(InvalidInput, match="0..9"):
        train(net, sample.x_train[:3], np.array([0, 1, 10]), **opts)
    with pytest.raises(InvalidInput, match="784"):
        train(net, sample.x_train[:, :100], sample.y_train, **opts)


def _blas_limits() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_background_and_inline_evaluation_agree(sample: Dataset) -> None:
    """Results do not depend on the caller's BLAS limit, and train restores that limit."""
    # Limit 2 evaluates each epoch on a second thread, limit 1 inline; the batch loop always
    # uses one BLAS thread (a second one would change the low bits of the weights).
    arch = Architecture.create([784, 16, 10])
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            before = _blas_limits()
            net, history = _fit(sample, arch, epochs=3, x_val=sample.x_test, y_val=sample.y_test)
            assert _blas_limits() == before
        runs.append((net, [(s.epoch, s.loss, s.train_accuracy, s.val_accuracy) for s in history]))
    (net1, hist1), (net2, hist2) = runs
    assert hist1 == hist2
    assert all(np.array_equal(a, b) for a, b in zip(net1.weights, net2.weights, strict=True))
