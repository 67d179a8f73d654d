"""Architecture validation and the Network's initialisation and inference."""

import json

import numpy as np
import pytest

from shared.exceptions import InvalidArchitecture, InvalidInput
from shared.mlp import Architecture, Network


def test_create_normalises_the_seeds_names() -> None:
    """The seed's "reLU" (and any case) becomes "relu"; lists become tuples."""
    arch = Architecture.create([784, 128, 64, 10], "reLU", "Softmax", "cross_entropy")
    assert arch == Architecture((784, 128, 64, 10), "relu", "softmax", "cross_entropy")
    assert Architecture.create([784, 10]).hidden_activation == "relu"


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"layers": [784]}, "at least 2"),
        ({"layers": []}, "at least 2"),
        ({"layers": [784, 0, 10]}, "positive integers"),
        ({"layers": [784, -3, 10]}, "positive integers"),
        ({"layers": [784, 2.5, 10]}, "positive integers"),
        ({"layers": [784, True, 10]}, "positive integers"),
        ({"layers": [784, "64", 10]}, "positive integers"),
        ({"layers": "784,10"}, "list of integers"),
        ({"layers": 784}, "list of integers"),
        ({"layers": [785, 10]}, "start at 784"),
        ({"layers": [784, 64, 9]}, "end at 10"),
        ({"layers": [784, 10], "hidden_activation": "softmax"}, "hidden_activation"),
        ({"layers": [784, 10], "output_activation": "relu"}, "output_activation"),
        ({"layers": [784, 10], "loss": "hinge"}, "loss"),
        ({"layers": [784, 10], "loss": None}, "strings"),
        ({"layers": [784, 10], "output_activation": "linear"}, "linear output"),
    ],
)
def test_invalid_architectures_are_refused(kwargs: dict, fragment: str) -> None:
    """Each invalid architecture raises InvalidArchitecture with one explanatory sentence."""
    with pytest.raises(InvalidArchitecture, match=fragment) as info:
        Architecture.create(**kwargs)
    assert str(info.value).endswith(".")


def test_dict_round_trip_is_json_able() -> None:
    """to_dict is plain JSON and from_dict restores an equal architecture."""
    arch = Architecture.create([784, 32, 10], "tanh", "linear", "mse")
    d = json.loads(json.dumps(arch.to_dict()))
    assert Architecture.from_dict(d) == arch


@pytest.mark.parametrize(
    "d",
    [
        None,
        [784, 10],
        {"layers": [784, 10]},
        {
            "layers": [784, 10],
            "hidden_activation": "relu",
            "output_activation": "softmax",
            "loss": "mse",
            "extra": 1,
        },
    ],
)
def test_from_dict_needs_exactly_the_four_keys(d: object) -> None:
    """from_dict refuses non-objects and missing or unknown keys."""
    with pytest.raises(InvalidArchitecture):
        Architecture.from_dict(d)


def test_n_params_counts_weights_and_biases() -> None:
    """The seed's 784-128-64-10 net has 109,386 parameters."""
    assert Architecture.create([784, 128, 64, 10]).n_params == 109_386


def test_initialize_is_he_with_zero_biases() -> None:
    """Weights are float32 N(0, 2 / n_in), biases zero, shapes batch-major (n_in, n_out)."""
    arch = Architecture.create([784, 256, 10])
    net = Network.initialize(arch, np.random.default_rng(0))
    assert [w.shape for w in net.weights] == [(784, 256), (256, 10)]
    assert all(w.dtype == np.float32 for w in net.weights + net.biases)
    assert net.weights[0].std() == pytest.approx(np.sqrt(2 / 784), rel=0.02)
    assert all(not b.any() for b in net.biases)


def test_predict_proba_and_predict_agree_and_chunk() -> None:
    """predict is the argmax of predict_proba; results do not depend on the chunk size."""
    arch = Architecture.create([784, 20, 10])
    net = Network.initialize(arch, np.random.default_rng(1))
    x = np.random.default_rng(2).random((37, 784), dtype=np.float32)
    p = net.predict_proba(x)
    assert p.shape == (37, 10) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(net.predict_proba(x, batch_size=5), p, rtol=1e-6)
    assert np.array_equal(net.predict(x), p.argmax(axis=1))
    assert np.array_equal(net.predict(x, batch_size=4), net.predict(x))
    assert net.predict(x[:0]).shape == (0,)


def test_predict_does_not_tie_on_saturated_sigmoids() -> None:
    """With float32 sigmoids saturated at 1.0, predict still picks the largest score."""
    arch = Architecture.create([784, 10], "relu", "sigmoid", "mse")
    net = Network.initialize(arch, np.random.default_rng(0))
    net.weights[0][...] = 0
    net.biases[0][...] = np.arange(10, dtype=np.float32) + 100
    x = np.zeros((2, 784), np.float32)
    assert (net.predict_proba(x) == 1.0).all()
    assert list(net.predict(x)) == [9, 9]


def test_accuracy_counts_matches() -> None:
    """accuracy is the fraction of predicted labels equal to y."""
    arch = Architecture.create([784, 10])
    net = Network.initialize(arch, np.random.default_rng(0))
    x = np.random.default_rng(1).random((50, 784), dtype=np.float32)
    y = net.predict(x)
    y[:10] = (y[:10] + 1) % 10
    assert net.accuracy(x, y) == pytest.approx(0.8)


def test_bad_inference_input_is_rejected() -> None:
    """Images that are not (N, 784) raise InvalidInput."""
    net = Network.initialize(Architecture.create([784, 10]), np.random.default_rng(0))
    with pytest.raises(InvalidInput, match="784"):
        net.predict(np.zeros((3, 28, 28), np.float32))
    with pytest.raises(InvalidInput):
        net.accuracy(np.zeros((3, 784), np.float32), np.zeros(2, np.uint8))


def test_network_rejects_mismatched_arrays() -> None:
    """Constructing a Network with arrays that do not fit the architecture fails."""
    arch = Architecture.create([784, 10])
    with pytest.raises(InvalidArchitecture):
        Network(arch, [np.zeros((10, 784), np.float32)], [np.zeros(10, np.float32)])
    with pytest.raises(InvalidArchitecture):
        Network(arch, [np.zeros((784, 10), np.float32)], [np.zeros(10, np.float64)])


def test_replaced_weight_arrays_are_still_trained() -> None:
    """Assigning a new array to weights[i] keeps it part of the trainable parameters."""
    net = Network.initialize(Architecture.create([784, 10]), np.random.default_rng(0))
    net.weights[0] = np.ones((784, 10), np.float32)
    flat = net.flat_parameters()
    assert net.weights[0].base is flat and (net.weights[0] == 1).all()
