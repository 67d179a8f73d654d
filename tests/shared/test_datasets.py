"""Dataset loading: the packaged sample, files on disk, validation and the Keras loaders."""

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from shared import datasets
from shared.datasets import from_arrays, load_builtin, load_path, load_split
from shared.exceptions import DatasetUnavailable, InvalidInput

REPO = Path(__file__).resolve().parents[2]
FASHION = REPO.parent / "shared" / "data" / "fashion-mnist"


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def _arrays(n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def test_packaged_sample_loads_as_float32() -> None:
    """mnist-sample gives 4000/1000 images (n, 784) float32 in [0, 1] and uint8 labels."""
    d = load_builtin("mnist-sample")
    assert d.name == "mnist-sample"
    assert d.x_train.shape == (4000, 784) and d.x_test.shape == (1000, 784)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.uint8
    assert d.x_train.min() == 0.0 and d.x_train.max() == 1.0
    assert set(np.unique(d.y_test)) == set(range(10))


def test_builtins_are_cached_and_read_only() -> None:
    """A second load returns the same arrays, which callers cannot modify."""
    first = load_builtin("mnist-sample")
    assert load_builtin("mnist-sample") is first
    with pytest.raises(ValueError):
        first.x_train[0, 0] = 1.0
    datasets.clear_cache()
    assert load_builtin("mnist-sample") is not first


def test_load_split_returns_one_split() -> None:
    """load_split gives (x, y) of the train or test split and refuses other names."""
    x, y = load_split("mnist-sample", "test")
    assert x.shape == (1000, 784) and y.shape == (1000,)
    with pytest.raises(InvalidInput, match="split"):
        load_split("mnist-sample", "validation")


def test_unknown_builtin_is_invalid_input() -> None:
    """An unknown dataset name raises InvalidInput listing the known ones."""
    with pytest.raises(InvalidInput, match="mnist-sample"):
        load_builtin("cifar10")


def test_from_arrays_accepts_uint8_and_float_images() -> None:
    """(n, 28, 28) uint8 is scaled by 1/255; (n, 784) floats in [0, 1] are kept."""
    a = _arrays()
    d = from_arrays("t", **a)
    assert d.x_train.shape == (6, 784)
    np.testing.assert_allclose(d.x_train * 255, a["x_train"].reshape(6, 784), atol=1e-4)
    f = from_arrays("f", d.x_train, a["y_train"], d.x_test.astype(np.float64), a["y_test"])
    assert f.x_test.dtype == np.float32 and np.array_equal(f.x_train, d.x_train)


@pytest.mark.parametrize(
    "key,value,fragment",
    [
        ("x_train", np.zeros((6, 27, 28), np.uint8), "shape"),
        ("x_train", np.zeros((0, 784), np.uint8), "empty"),
        ("x_train", np.full((6, 784), 2.0), r"\[0, 1\]"),
        ("x_train", np.full((6, 784), np.nan), "NaN"),
        ("x_train", np.zeros((6, 784), np.int16), "dtype"),
        ("x_train", np.array([None] * 6 * 784, dtype=object).reshape(6, 784), "object"),
        ("y_train", np.zeros(5, np.uint8), "5 entries for 6 images"),
        ("y_test", np.array([0, 1, 2, 10]), "0..9"),
        ("y_test", np.array([0, 1, 2, -1]), "0..9"),
        ("y_test", np.zeros(4, np.float32), "integers"),
    ],
)
def test_from_arrays_rejects_bad_arrays(key: str, value: np.ndarray, fragment: str) -> None:
    """Wrong shapes, dtypes, pixel ranges, labels or lengths raise InvalidInput by name."""
    a = _arrays()
    a[key] = value
    with pytest.raises(InvalidInput, match=fragment):
        from_arrays("bad", **a)


def test_load_path_reads_keras_layout_npz(tmp_path: Path) -> None:
    """An .npz with x_train, y_train, x_test, y_test loads like a built-in."""
    a = _arrays()
    np.savez(tmp_path / "digits.npz", allow_pickle=False, **a)
    d = load_path(tmp_path / "digits.npz")
    assert d.name == "digits.npz" and d.x_test.shape == (4, 784)
    assert np.array_equal(d.y_train, a["y_train"])


def test_load_path_reads_idx_folder(tmp_path: Path) -> None:
    """A folder with the four IDX .gz files loads, and equals the same data as .npz."""
    a = _arrays()
    for key, fname in datasets.IDX_FILES.items():
        _write_idx(tmp_path / fname, a[key])
    d = load_path(tmp_path, name="idx")
    assert d.name == "idx" and np.array_equal(d.y_test, a["y_test"])
    np.testing.assert_array_equal(d.x_train, from_arrays("n", **a).x_train)


def test_load_path_problems(tmp_path: Path) -> None:
    """Missing paths are DatasetUnavailable; corrupt or incomplete files are InvalidInput."""
    with pytest.raises(DatasetUnavailable, match="no dataset"):
        load_path(tmp_path / "nope.npz")
    with pytest.raises(DatasetUnavailable, match="IDX"):
        load_path(tmp_path)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InvalidInput, match="not a readable"):
        load_path(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 784), np.uint8))
    with pytest.raises(InvalidInput, match="lacks y_train"):
        load_path(tmp_path / "partial.npz")
    np.savez(
        tmp_path / "pickled.npz", allow_pickle=True, **{**_arrays(), "y_test": np.array([1, None])}
    )
    with pytest.raises(InvalidInput):
        load_path(tmp_path / "pickled.npz")


def test_idx_with_wrong_header_is_rejected(tmp_path: Path) -> None:
    """IDX files with a bad magic or a size that disagrees with the header are refused."""
    a = _arrays()
    for key, fname in datasets.IDX_FILES.items():
        _write_idx(tmp_path / fname, a[key])
    with gzip.open(tmp_path / datasets.IDX_FILES["y_test"], "wb") as fh:
        fh.write(bytes([0, 0, 0x08, 1]) + (99).to_bytes(4, "big") + b"\x01\x02")
    with pytest.raises(InvalidInput, match="declares shape"):
        load_path(tmp_path)
    with gzip.open(tmp_path / datasets.IDX_FILES["y_test"], "wb") as fh:
        fh.write(b"\x12\x34\x56\x78")
    with pytest.raises(InvalidInput, match="IDX"):
        load_path(tmp_path)


_KERAS_PROBE = textwrap.dedent(
    """
    import json, sys, time
    from shared.datasets import load_builtin
    from shared.exceptions import DatasetUnavailable

    out = {}
    d = load_builtin("fashion_mnist")
    out["fashion"] = {
        "shape": list(d.x_train.shape), "test": list(d.x_test.shape),
        "dtype": str(d.x_train.dtype), "checksum": float(d.x_train[::97].sum()),
        "labels": int(d.y_train.astype(int).sum()), "keras": "keras" in sys.modules,
    }
    started = time.monotonic()
    try:
        m = load_builtin("mnist")
        out["mnist"] = {"error": None, "shape": list(m.x_train.shape)}
    except DatasetUnavailable as exc:
        out["mnist"] = {"error": str(exc), "code": exc.code}
    out["mnist"]["seconds"] = time.monotonic() - started
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def keras_probe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the real Keras loaders once in a clean process with a private KERAS_HOME."""
    assert importlib.util.find_spec("keras"), "keras (the worker extra) must be installed"
    assert FASHION.is_dir(), f"{FASHION} (the shared Fashion-MNIST copy) must sit beside the repo"
    home = tmp_path_factory.mktemp("keras_home")
    target = home / "datasets" / "fashion-mnist"
    target.mkdir(parents=True)
    for f in FASHION.glob("*.gz"):
        shutil.copyfile(f, target / f.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS")}
    env.update(KERAS_HOME=str(home), PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", _KERAS_PROBE],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["home"] = str(home)
    return result


def test_keras_fashion_mnist_reads_keras_home(keras_probe: dict) -> None:
    """fashion_mnist goes through keras.datasets and reads $KERAS_HOME/datasets/fashion-mnist."""
    fashion = keras_probe["fashion"]
    assert fashion["keras"] is True
    assert fashion["shape"] == [60000, 784] and fashion["test"] == [10000, 784]
    assert fashion["dtype"] == "float32"
    reference = load_path(FASHION)
    assert fashion["checksum"] == pytest.approx(float(reference.x_train[::97].sum()))
    assert fashion["labels"] == int(reference.y_train.astype(int).sum())


def test_keras_mnist_offline_fails_fast_with_a_placement_hint(keras_probe: dict) -> None:
    """Offline and without the file, mnist fails in seconds saying where to put mnist.npz
    (on a machine that can download it, the real 60,000-image set must load instead)."""
    mnist = keras_probe["mnist"]
    if mnist["error"] is None:
        assert mnist["shape"] == [60000, 784]
        return
    assert mnist["code"] == "dataset_unavailable"
    assert os.path.join(keras_probe["home"], "datasets", "mnist.npz") in mnist["error"]
    assert mnist["seconds"] < 20
