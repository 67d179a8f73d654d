"""The .npz weights and checkpoint formats: exact round trips and strict rejection."""

import io
import json
import zipfile

import numpy as np
import pytest

from shared.exceptions import InvalidWeightsFile
from shared.mlp import (
    Architecture,
    Network,
    TrainState,
    state_from_bytes,
    state_to_bytes,
    weights_from_bytes,
    weights_to_bytes,
)
from shared.mlp.serialize import FORMAT


@pytest.fixture
def network() -> Network:
    arch = Architecture.create([784, 12, 8, 10], "tanh", "sigmoid", "mse")
    net = Network.initialize(arch, np.random.default_rng(0))
    net.biases[0][...] = np.linspace(-1, 1, 12, dtype=np.float32)
    return net


def _members(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _savez(members: dict[str, np.ndarray], allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=allow_pickle, **members)
    return buf.getvalue()


def test_weights_round_trip_is_exact(network: Network) -> None:
    """weights_from_bytes(weights_to_bytes(n)) has the same architecture and identical bits."""
    loaded = weights_from_bytes(weights_to_bytes(network))
    assert loaded.arch == network.arch
    for a, b in zip(loaded.weights + loaded.biases, network.weights + network.biases, strict=True):
        assert a.dtype == np.float32 and a.tobytes() == b.tobytes()


def test_weights_file_is_plain_npz_with_documented_members(network: Network) -> None:
    """Other services can read the file with np.load(allow_pickle=False): W0,b0,..,architecture."""
    members = _members(weights_to_bytes(network))
    assert sorted(members) == ["W0", "W1", "W2", "architecture", "b0", "b1", "b2"]
    arch = json.loads(str(members["architecture"]))
    assert arch == {"format": FORMAT, **network.arch.to_dict()}
    assert members["W1"].shape == (12, 8) and members["b2"].shape == (10,)


def test_state_round_trip_is_exact(network: Network) -> None:
    """A checkpoint restores weights, epoch and a generator that continues the same stream."""
    rng = np.random.default_rng(5)
    rng.permutation(100)
    state = TrainState(network, 3, dict(rng.bit_generator.state))
    loaded = state_from_bytes(state_to_bytes(state))
    assert loaded.epoch == 3
    assert loaded.network.weights[1].tobytes() == network.weights[1].tobytes()
    assert np.array_equal(loaded.rng().permutation(1000), rng.permutation(1000))


@pytest.mark.parametrize("bit_generator", ["PCG64", "MT19937", "Philox", "SFC64"])
def test_any_numpy_bit_generator_survives_a_checkpoint(
    network: Network, bit_generator: str
) -> None:
    """Generator states holding arrays (MT19937's key) are stored as JSON and restored."""
    rng = np.random.Generator(getattr(np.random, bit_generator)(11))
    state = TrainState(network, 1, dict(rng.bit_generator.state))
    restored = state_from_bytes(state_to_bytes(state)).rng()
    assert np.array_equal(restored.random(5), rng.random(5))


def test_weights_and_checkpoints_are_not_interchangeable(network: Network) -> None:
    """A checkpoint is not a weights file (extra members) and vice versa (missing members)."""
    state = TrainState(network, 1, dict(np.random.default_rng(0).bit_generator.state))
    with pytest.raises(InvalidWeightsFile, match="unexpected"):
        weights_from_bytes(state_to_bytes(state))
    with pytest.raises(InvalidWeightsFile, match="missing"):
        state_from_bytes(weights_to_bytes(network))


@pytest.mark.parametrize(
    "data",
    [b"", b"not a zip file at all", b"PK\x03\x04garbage", b"\x93NUMPY\x01\x00garbage"],
)
def test_garbage_bytes_raise_invalid_weights_file(data: bytes) -> None:
    """Empty, random or truncated bytes raise InvalidWeightsFile, never a raw zip error."""
    with pytest.raises(InvalidWeightsFile):
        weights_from_bytes(data)


def test_truncated_file_is_rejected(network: Network) -> None:
    """A file cut short anywhere raises InvalidWeightsFile."""
    data = weights_to_bytes(network)
    for cut in (10, len(data) // 2, len(data) - 30):
        with pytest.raises(InvalidWeightsFile):
            weights_from_bytes(data[:cut])


def test_compressed_archive_is_rejected(network: Network) -> None:
    """Deflated members (np.savez_compressed) are refused: no decompression bombs."""
    buf = io.BytesIO()
    np.savez_compressed(buf, allow_pickle=False, **_members(weights_to_bytes(network)))
    with pytest.raises(InvalidWeightsFile, match="compressed"):
        weights_from_bytes(buf.getvalue())


def test_plain_npy_is_rejected(network: Network) -> None:
    """A bare .npy array (not an archive) is refused."""
    buf = io.BytesIO()
    np.save(buf, network.weights[0])
    with pytest.raises(InvalidWeightsFile):
        weights_from_bytes(buf.getvalue())


def test_extra_member_is_rejected(network: Network) -> None:
    """An archive with a member the architecture does not call for is refused."""
    members = _members(weights_to_bytes(network))
    members["W3"] = np.zeros((10, 10), np.float32)
    with pytest.raises(InvalidWeightsFile, match="unexpected \\['W3'\\]"):
        weights_from_bytes(_savez(members))


def test_missing_member_is_rejected(network: Network) -> None:
    """An archive lacking a layer array, or the architecture, is refused."""
    members = _members(weights_to_bytes(network))
    del members["b1"]
    with pytest.raises(InvalidWeightsFile, match="missing \\['b1'\\]"):
        weights_from_bytes(_savez(members))
    members = _members(weights_to_bytes(network))
    del members["architecture"]
    with pytest.raises(InvalidWeightsFile, match="architecture"):
        weights_from_bytes(_savez(members))


@pytest.mark.parametrize(
    "name,array",
    [
        ("W1", np.zeros((8, 12), np.float32)),
        ("b0", np.zeros((13,), np.float32)),
        ("W0", np.zeros((784, 12), np.float64)),
        ("b2", np.zeros((10,), np.int32)),
    ],
)
def test_wrong_shape_or_dtype_is_rejected(network: Network, name: str, array: np.ndarray) -> None:
    """Arrays whose shape or dtype disagree with the architecture are refused by name."""
    members = _members(weights_to_bytes(network))
    members[name] = array
    with pytest.raises(InvalidWeightsFile, match=f"'{name}'"):
        weights_from_bytes(_savez(members))


def test_object_array_is_rejected_without_unpickling(network: Network) -> None:
    """A pickled object array is refused before anything is unpickled."""
    members = _members(weights_to_bytes(network))
    members["W0"] = np.array([object()] * 3, dtype=object)
    with pytest.raises(InvalidWeightsFile, match="'W0'"):
        weights_from_bytes(_savez(members, allow_pickle=True))


def test_architecture_mismatching_arrays_is_rejected(network: Network) -> None:
    """Architecture JSON that names other layer sizes than the arrays have is refused."""
    members = _members(weights_to_bytes(network))
    arch = json.loads(str(members["architecture"]))
    arch["layers"] = [784, 12, 9, 10]
    members["architecture"] = np.array(json.dumps(arch))
    with pytest.raises(InvalidWeightsFile, match="'W1'"):
        weights_from_bytes(_savez(members))


@pytest.mark.parametrize(
    "architecture",
    [
        np.array("{not json"),
        np.array(json.dumps({"layers": [784, 10]})),
        np.array(json.dumps({"format": FORMAT, "layers": [784, 10], "hidden_activation": "relu"})),
        np.array(
            json.dumps(
                {
                    "format": FORMAT,
                    "layers": [784, 10],
                    "hidden_activation": "relu",
                    "output_activation": "linear",
                    "loss": "cross_entropy",
                }
            )
        ),
        np.frombuffer(b"{}", dtype=np.uint8),
    ],
)
def test_bad_architecture_member_is_rejected(architecture: np.ndarray) -> None:
    """Malformed, incomplete, invalid or non-text architecture members are refused."""
    members = {
        "architecture": architecture,
        "W0": np.zeros((784, 10), np.float32),
        "b0": np.zeros(10, np.float32),
    }
    with pytest.raises(InvalidWeightsFile):
        weights_from_bytes(_savez(members))


def test_duplicate_member_is_rejected(network: Network) -> None:
    """A zip holding the same member twice is refused."""
    data = weights_to_bytes(network)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf, pytest.warns(UserWarning):
        zf.writestr("W0.npy", zipfile.ZipFile(io.BytesIO(data)).read("W0.npy"))
    with pytest.raises(InvalidWeightsFile):
        weights_from_bytes(buf.getvalue())


def test_bad_checkpoint_fields_are_rejected(network: Network) -> None:
    """A checkpoint with a malformed generator state or a negative epoch is refused."""
    rng_state = dict(np.random.default_rng(0).bit_generator.state)
    good = _members(state_to_bytes(TrainState(network, 2, rng_state)))
    assert state_from_bytes(_savez(good)).epoch == 2
    for name, value in (
        ("rng_state", np.array(json.dumps({"bit_generator": "os.system"}))),
        ("rng_state", np.array(json.dumps({"bit_generator": "PCG64", "state": "x"}))),
        ("epoch", np.array(-1, dtype=np.int64)),
        ("epoch", np.array(1.5)),
    ):
        with pytest.raises(InvalidWeightsFile):
            state_from_bytes(_savez({**good, name: value}))
