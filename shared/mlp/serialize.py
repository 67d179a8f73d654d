"""Weights files and training checkpoints: one ``.npz`` each, readable without pickle.

Weights file (what other services download), an uncompressed ``np.savez`` archive (members
stored, not deflated) with exactly these members and nothing else::

    architecture   0-d unicode array: JSON {"format": "mnistq-mlp-v1", "layers": [784, ..., 10],
                   "hidden_activation": ..., "output_activation": ..., "loss": ...}
    W0, W1, ...    float32 little-endian, W{i} of shape (layers[i], layers[i+1]); a forward
                   pass is a = f(a @ W{i} + b{i}) with a of shape (batch, layers[i])
    b0, b1, ...    float32 little-endian, b{i} of shape (layers[i+1],)

Read it anywhere with ``f = np.load(path, allow_pickle=False)`` and
``json.loads(str(f["architecture"]))``.

Checkpoint (training state): the same members plus

    rng_state      0-d unicode array: JSON of numpy's ``Generator.bit_generator.state``
    epoch          0-d int64: number of completed epochs

Loading is strict: the member names must match the architecture exactly (no extra, none
missing), every array header is checked for shape and dtype before its data is read, object
arrays and pickles are refused, and the round trip is bit-exact. Every problem, including a
file that is not a zip at all, raises :class:`~shared.exceptions.InvalidWeightsFile`.
"""

import io
import json
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from shared.exceptions import InvalidArchitecture, InvalidInput, InvalidWeightsFile, MnistqError
from shared.mlp.network import Architecture, Network
from shared.mlp.train import TrainState, restore_rng, to_json_types

FORMAT = "mnistq-mlp-v1"
_JSON_LIMIT = 1 << 20  # characters; a real architecture or rng state is well under 1 kB
_PARAM_DTYPE = np.dtype("<f4")
_EPOCH_DTYPE = np.dtype("<i8")


def weights_to_bytes(network: Network) -> bytes:
    """The weights file (see module docstring) for a float32 ``network``."""
    return _save(_network_members(network))


def weights_from_bytes(data: bytes) -> Network:
    """Parse a weights file; anything malformed raises InvalidWeightsFile."""
    return _load(data, checkpoint=False)[0]


def state_to_bytes(state: TrainState) -> bytes:
    """The checkpoint file (weights file + ``rng_state`` + ``epoch``) for ``state``."""
    members = _network_members(state.network)
    members["rng_state"] = np.array(json.dumps(to_json_types(state.rng_state)))
    members["epoch"] = np.array(state.epoch, dtype=_EPOCH_DTYPE)
    return _save(members)


def state_from_bytes(data: bytes) -> TrainState:
    """Parse a checkpoint file; anything malformed raises InvalidWeightsFile."""
    network, extra = _load(data, checkpoint=True)
    return TrainState(network=network, epoch=extra["epoch"], rng_state=extra["rng_state"])


def _network_members(network: Network) -> dict[str, np.ndarray]:
    if network.dtype != np.float32:
        raise InvalidInput(f"only float32 networks are saved; this one is {network.dtype}.")
    members = {"architecture": np.array(json.dumps({"format": FORMAT, **network.arch.to_dict()}))}
    for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        members[f"W{i}"] = w
        members[f"b{i}"] = b
    return members


def _save(members: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **members)
    return buf.getvalue()


def _load(data: bytes, checkpoint: bool) -> tuple[Network, dict[str, Any]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidWeightsFile(f"a weights file must be bytes, not {type(data).__name__}.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return _load_zip(zf, checkpoint)
    except MnistqError as exc:
        if isinstance(exc, InvalidWeightsFile):
            raise
        raise InvalidWeightsFile(str(exc)) from exc
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        kind = "checkpoint" if checkpoint else "weights file"
        raise InvalidWeightsFile(f"the {kind} is not a readable .npz archive ({exc}).") from exc


def _load_zip(zf: zipfile.ZipFile, checkpoint: bool) -> tuple[Network, dict[str, Any]]:
    kind = "checkpoint" if checkpoint else "weights file"
    names = zf.namelist()
    if "architecture.npy" not in names:
        raise InvalidWeightsFile(f"the {kind} has no 'architecture' member.")
    arch = _parse_architecture(_read_json(zf, "architecture"))
    expected = ["architecture"]
    for i in range(arch.n_layers):
        expected += [f"W{i}", f"b{i}"]
    if checkpoint:
        expected += ["rng_state", "epoch"]
    got = [n[:-4] if n.endswith(".npy") else n for n in names]
    if sorted(got) != sorted(expected) or len(set(names)) != len(names):
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        raise InvalidWeightsFile(
            f"the {kind} for layers {list(arch.layers)} must hold exactly {expected}; "
            f"missing {missing}, unexpected {extra or 'duplicate members'}."
        )
    weights, biases = [], []
    for i in range(arch.n_layers):
        n_in, n_out = arch.layers[i], arch.layers[i + 1]
        weights.append(_read_array(zf, f"W{i}", (n_in, n_out), _PARAM_DTYPE))
        biases.append(_read_array(zf, f"b{i}", (n_out,), _PARAM_DTYPE))
    extra_fields: dict[str, Any] = {}
    if checkpoint:
        rng_state = _read_json(zf, "rng_state")
        try:
            restore_rng(rng_state)
        except InvalidInput as exc:
            raise InvalidWeightsFile(f"the checkpoint's rng_state is unusable: {exc}") from exc
        epoch = int(_read_array(zf, "epoch", (), _EPOCH_DTYPE))
        if epoch < 0:
            raise InvalidWeightsFile(f"the checkpoint's epoch is negative ({epoch}).")
        extra_fields = {"rng_state": rng_state, "epoch": epoch}
    return Network(arch, weights, biases), extra_fields


def _parse_architecture(d: Any) -> Architecture:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        fmt = d.get("format") if isinstance(d, dict) else None
        raise InvalidWeightsFile(f"the architecture must declare format {FORMAT!r}, not {fmt!r}.")
    try:
        return Architecture.from_dict({k: v for k, v in d.items() if k != "format"})
    except InvalidArchitecture as exc:
        raise InvalidWeightsFile(f"the file's architecture is invalid: {exc}") from exc


def _read_json(zf: zipfile.ZipFile, name: str) -> Any:
    def check(shape: tuple[int, ...], dtype: np.dtype) -> bool:
        return shape == () and dtype.kind == "U" and dtype.itemsize <= 4 * _JSON_LIMIT

    text = str(_read_member(zf, name, check, "a 0-d unicode (JSON) array"))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidWeightsFile(f"member '{name}' is not valid JSON ({exc.msg}).") from exc


def _read_array(
    zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray:
    def check(got_shape: tuple[int, ...], got_dtype: np.dtype) -> bool:
        return got_shape == shape and got_dtype == dtype

    return _read_member(zf, name, check, f"{dtype.name} of shape {shape}")


def _read_member(
    zf: zipfile.ZipFile,
    name: str,
    check: Callable[[tuple[int, ...], np.dtype], bool],
    want: str,
) -> np.ndarray:
    """Read ``name``.npy, validating its header with ``check`` before touching the data."""
    info = zf.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:
        # Stored members cannot be larger than the file itself: no decompression bombs.
        raise InvalidWeightsFile(
            f"member '{name}' is compressed; write the file with np.savez, not savez_compressed."
        )
    with zf.open(info) as f:
        shape, fortran, dtype = _read_header(f, name)
        if dtype.hasobject or not check(shape, dtype):
            raise InvalidWeightsFile(
                f"member '{name}' is {dtype} of shape {shape}; expected {want}."
            )
        count = int(np.prod(shape))
        raw = f.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise InvalidWeightsFile(f"member '{name}' is truncated.")
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    if fortran:
        return flat.reshape(shape[::-1]).T.copy()
    return flat.reshape(shape).copy()


def _read_header(f: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            return fmt.read_array_header_1_0(f)
        if version == (2, 0):
            return fmt.read_array_header_2_0(f)
    except ValueError as exc:
        raise InvalidWeightsFile(f"member '{name}' is not a valid .npy array ({exc}).") from exc
    raise InvalidWeightsFile(f"member '{name}' uses unsupported .npy version {version}.")
