"""Image datasets as float32 arrays ready for :func:`shared.mlp.train`.

Built-in names (see :mod:`shared.catalog`):

* ``mnist`` and ``fashion_mnist`` come from ``keras.datasets.<name>.load_data()``: the real
  Keras loaders, which read ``$KERAS_HOME/datasets/`` (default ``~/.keras/datasets/``) and
  download there when a file is missing. Keras is imported only here, lazily, with
  ``KERAS_BACKEND`` defaulted to ``jax``. Keras reads ``KERAS_HOME`` when it is first
  imported, so set it before the first load in a process.
* ``mnist-sample`` is the 5,000 real MNIST digits shipped inside the package
  (``shared/data/mnist_sample.npz``), available offline.

Loaded built-ins are cached for the life of the process, so a worker pays the load once;
their arrays are read-only. Every array goes through :mod:`shared.arrays`, so a dataset
always has ``x_*`` (n, 784) float32 in [0, 1] and ``y_*`` (n,) uint8 in 0..9.
"""

import gzip
import importlib.resources
import logging
import os
import socket
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.arrays import check_images, check_labels, to_float32
from shared.catalog import BUILTIN_DATASETS, SPLITS
from shared.exceptions import DatasetUnavailable, InvalidInput

logger = logging.getLogger(__name__)

KERAS_DOWNLOAD_TIMEOUT = 10.0  # seconds per socket operation while Keras fetches a file
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_SAMPLE_RESOURCE = ("data", "mnist_sample.npz")

_cache: dict[str, "Dataset"] = {}
_cache_lock = threading.Lock()
_socket_lock = threading.Lock()


@dataclass(frozen=True)
class Dataset:
    """A train/test pair: ``x_*`` (n, 784) float32 in [0, 1], ``y_*`` (n,) uint8 labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of ``"train"`` or ``"test"``."""
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}; got {split!r}.")


def from_arrays(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
) -> Dataset:
    """Validate images ((n, 28, 28) or (n, 784), uint8 or floats in [0, 1]) and labels.

    Returns read-only float32 (n, 784) images and uint8 (n,) labels; the caller's arrays are
    never modified. Raises InvalidInput naming the offending array.
    """
    parts: dict[str, np.ndarray] = {}
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        images = to_float32(check_images(x, f"{name} x_{split}"))
        labels = check_labels(y, images.shape[0], f"{name} y_{split}")
        parts[f"x_{split}"] = _read_only(images)
        parts[f"y_{split}"] = _read_only(labels)
    return Dataset(name=name, **parts)


def load_builtin(name: str) -> Dataset:
    """The built-in dataset ``name`` (mnist, fashion_mnist, mnist-sample), cached.

    Raises InvalidInput for an unknown name and DatasetUnavailable when Keras cannot provide
    the files (the message says where to put them).
    """
    if name not in BUILTIN_DATASETS:
        raise InvalidInput(
            f"unknown dataset {name!r}; built-in datasets are {', '.join(BUILTIN_DATASETS)}."
        )
    with _cache_lock:
        cached = _cache.get(name)
        if cached is not None:
            return cached
        dataset = _load_sample() if name == "mnist-sample" else _load_keras(name)
        _cache[name] = dataset
        logger.info("loaded dataset %s: %d train, %d test", name, *_counts(dataset))
        return dataset


def load_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x (n, 784) float32, y (n,) uint8)`` of a built-in's ``"train"`` or ``"test"`` split."""
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}; got {split!r}.")
    return load_builtin(name).split(split)


def clear_cache() -> None:
    """Forget the loaded built-in datasets (frees their memory once no job holds them)."""
    with _cache_lock:
        _cache.clear()


def load_path(path: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load an ``.npz`` in Keras layout (x_train, y_train, x_test, y_test) or a folder holding
    the four IDX ``.gz`` files of MNIST / Fashion-MNIST. ``name`` defaults to the file name.

    A missing path raises DatasetUnavailable; malformed content raises InvalidInput.
    """
    p = Path(path)
    label = name or p.name
    if p.is_dir():
        missing = [f for f in IDX_FILES.values() if not (p / f).is_file()]
        if missing:
            raise DatasetUnavailable(f"{p} lacks the IDX files {', '.join(missing)}.")
        arrays = {key: _read_idx(p / fname) for key, fname in IDX_FILES.items()}
        return from_arrays(label, **arrays)
    if not p.is_file():
        raise DatasetUnavailable(f"no dataset file or folder at {p}.")
    with p.open("rb") as fh:
        return _from_npz(label, fh, str(p))


def _load_sample() -> Dataset:
    resource = importlib.resources.files("shared").joinpath(*_SAMPLE_RESOURCE)
    with resource.open("rb") as fh:
        return _from_npz("mnist-sample", fh, "the packaged mnist_sample.npz")


def _from_npz(name: str, fh: Any, where: str) -> Dataset:
    try:
        with np.load(fh, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise InvalidInput(f"{where} is a single .npy array, not an .npz archive.")
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise InvalidInput(
                    f"{where} lacks {', '.join(missing)}; an .npz dataset needs "
                    f"{', '.join(_NPZ_KEYS)} (the keras mnist.npz layout)."
                )
            arrays = {k: npz[k] for k in _NPZ_KEYS}
    except InvalidInput:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{where} is not a readable .npz archive ({exc}).") from exc
    return from_arrays(name, **arrays)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed) as uint8: (n,) labels or (n, rows, cols) images."""
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise InvalidInput(f"{path.name} is not a readable gzip file ({exc}).") from exc
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise InvalidInput(f"{path.name} is not an unsigned-byte IDX file.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim not in (1, 3) or len(data) < header:
        raise InvalidInput(f"{path.name} has {ndim} dimensions; IDX labels have 1, images 3.")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != int(np.prod(dims)):
        raise InvalidInput(
            f"{path.name} declares shape {dims} but holds {len(data) - header} bytes of data."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load_keras(name: str) -> Dataset:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except Exception as exc:  # ImportError, or a backend that fails to initialise
        raise DatasetUnavailable(
            f"the {name} dataset needs Keras, which could not be imported ({exc}); "
            "install the worker extra (keras, jax)."
        ) from exc
    loader = keras.datasets.mnist if name == "mnist" else keras.datasets.fashion_mnist
    # Keras downloads with urllib and no timeout; bound every socket operation so an
    # unreachable host fails in seconds instead of hanging the job. The default timeout is
    # process-wide, hence the lock and the restore.
    with _socket_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(KERAS_DOWNLOAD_TIMEOUT)
        try:
            (x_train, y_train), (x_test, y_test) = loader.load_data()
        except Exception as exc:  # Keras raises bare Exception for fetch failures
            raise DatasetUnavailable(_unavailable_message(name, exc)) from exc
        finally:
            socket.setdefaulttimeout(previous)
    return from_arrays(name, x_train, y_train, x_test, y_test)


def _unavailable_message(name: str, exc: BaseException) -> str:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    if name == "mnist":
        where = (
            f"put the original mnist.npz (Keras checks its SHA-256) at "
            f"{os.path.join(home, 'datasets', 'mnist.npz')}"
        )
    else:
        folder = os.path.join(home, "datasets", "fashion-mnist")
        where = f"put {', '.join(sorted(IDX_FILES.values()))} in {folder}"
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"Keras could not load the {name} dataset ({reason}); {where}, "
        "or give this worker internet access."
    )


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


def _counts(d: Dataset) -> tuple[int, int]:
    return d.x_train.shape[0], d.x_test.shape[0]
