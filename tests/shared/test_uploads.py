"""Tests for shared.uploads: every format round-trips, and every bad upload is refused clearly."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import pickle
import struct
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shared.exceptions import InvalidInput, PayloadTooLarge
from shared.uploads import (
    ImageSource,
    ParsedDataset,
    UploadLimits,
    open_images,
    read_dataset,
    sha256_of,
)
from tests.conftest import SHARED

FASHION = SHARED / "data" / "fashion-mnist"
RNG = np.random.default_rng(1234)
X8 = RNG.integers(0, 256, size=(25, 28, 28), dtype=np.uint8)
XF = (X8.astype(np.float32) / 255).reshape(25, 784)
Y = RNG.integers(0, 10, size=25).astype(np.int64)
DETONATIONS: list[str] = []


# -- builders ---------------------------------------------------------------------------------


def _detonate() -> None:
    DETONATIONS.append("unpickled")


class Boom:
    """Unpickling this calls ``_detonate``: proof that a loader ran pickle."""

    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return _detonate, ()


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "|u1", version: int = 1) -> bytes:
    """A hand-written .npy header (no data), declaring whatever shape we like."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    write = np.lib.format.write_array_header_1_0
    if version == 2:
        write = np.lib.format.write_array_header_2_0
    write(buf, header)
    return buf.getvalue()


def make_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return buf.getvalue()


def npz(compressed: bool = False, **arrays: Any) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def idx_images(x: np.ndarray) -> bytes:
    n, r, c = x.shape
    return struct.pack(">IIII", 0x803, n, r, c) + x.astype(np.uint8).tobytes()


def idx_labels(y: np.ndarray) -> bytes:
    return struct.pack(">II", 0x801, len(y)) + y.astype(np.uint8).tobytes()


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    image = Image.fromarray(arr)
    if mode is not None:
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_zip(x: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    members = {}
    for i, img in enumerate(x):
        folder = "" if labels is None else f"{labels[i]}/"
        members[f"digits/{folder}{i:03d}.png"] = png(img)
    return make_zip(members)


def open_bytes(data: bytes, name: str, **kwargs: Any) -> ImageSource:
    return open_images(io.BytesIO(data), name, **kwargs)


def read_all(source: ImageSource, rows: int = 8192) -> tuple[np.ndarray, np.ndarray | None]:
    xs, ys = [], []
    for x, y in source.iter_chunks(rows):
        xs.append(x)
        if y is not None:
            ys.append(y)
    return np.concatenate(xs), (np.concatenate(ys) if source.has_labels else None)


def patch_eocd_count(data: bytes, count: int) -> bytes:
    """Make a zip's end record claim ``count`` members (zipfile itself ignores that field)."""
    at = data.rfind(b"PK\x05\x06")
    return data[: at + 8] + struct.pack("<HH", count, count) + data[at + 12 :]


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 7, 8192])
@pytest.mark.parametrize("shape", [(25, 28, 28), (25, 784)])
def test_npy_uint8_round_trip(shape: tuple[int, ...], rows: int) -> None:
    """A uint8 .npy in either shape streams back exactly, whatever the chunk size."""
    with open_bytes(npy(X8.reshape(shape)), "x.npy", limits=UploadLimits()) as source:
        assert (source.count, source.dtype, source.format, source.has_labels) == (
            25,
            "uint8",
            "npy",
            False,
        )
        x, y = read_all(source, rows)
    assert y is None
    assert x.dtype == np.uint8 and x.shape == (25, 784)
    np.testing.assert_array_equal(x, X8.reshape(25, 784))


@pytest.mark.parametrize("dtype", ["<f2", "<f4", ">f4", "<f8"])
def test_npy_float_round_trip(dtype: str) -> None:
    """Float pixels in [0, 1] of any width or byte order come out as float32."""
    data = XF.reshape(25, 28, 28).astype(dtype)
    with open_bytes(npy(data), "x.npy") as source:
        assert source.dtype == "float32"
        x, _ = read_all(source, rows=4)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, data.reshape(25, 784).astype(np.float32))


@pytest.mark.parametrize("dtype", ["<i8", ">u2", "i1", "<u4"])
def test_npy_other_integers_become_uint8(dtype: str) -> None:
    """Integer pixels of other dtypes are accepted when all values are 0..255."""
    data = (X8 % 128).astype(dtype)
    with open_bytes(npy(data), "x.npy") as source:
        assert source.dtype == "uint8"
        x, _ = read_all(source, rows=10)
    np.testing.assert_array_equal(x, (X8 % 128).reshape(25, 784))


def test_large_npy_streams_in_default_chunks() -> None:
    """N larger than one default chunk comes back whole, chunk by chunk, never over 8192 rows."""
    big = np.random.default_rng(0).integers(0, 256, size=(20_000, 784), dtype=np.uint8)
    with open_bytes(npy(big), "big.npy") as source:
        sizes = [x.shape[0] for x, _ in source.iter_chunks()]
        x, _ = read_all(source)
    assert sizes == [8192, 8192, 3616]
    np.testing.assert_array_equal(x, big)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("with_labels", [False, True])
def test_npz_round_trip(compressed: bool, with_labels: bool) -> None:
    """An .npz with x and optional y streams x back and returns checked uint8 labels."""
    arrays = {"x": X8, "y": Y} if with_labels else {"x": X8}
    with open_bytes(npz(compressed, **arrays), "in.npz") as source:
        assert (source.format, source.has_labels) == ("npz", with_labels)
        x, y = read_all(source, rows=6)
    np.testing.assert_array_equal(x, X8.reshape(25, 784))
    if with_labels:
        assert y is not None and y.dtype == np.uint8
        np.testing.assert_array_equal(y, Y)
    else:
        assert y is None


def test_npz_float_x_and_column_labels() -> None:
    """Float x and (N, 1) labels in an .npz are accepted."""
    with open_bytes(npz(x=XF.astype(np.float64), y=Y.reshape(-1, 1)), "in.npz") as source:
        x, y = read_all(source, rows=8)
    np.testing.assert_array_equal(x, XF)
    np.testing.assert_array_equal(y, Y)


def test_npz_member_read_again_gives_same_chunks() -> None:
    """Iterating a source twice starts over and yields the same data."""
    with open_bytes(npz(True, x=X8), "in.npz") as source:
        first, _ = read_all(source, rows=4)
        second, _ = read_all(source, rows=9)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("compressed", [False, True])
def test_idx_round_trip(compressed: bool) -> None:
    """IDX images, raw or gzip-compressed, stream back exactly."""
    data = idx_images(X8)
    name = "images-idx3-ubyte"
    if compressed:
        data, name = gzip.compress(data), name + ".gz"
    with open_bytes(data, name) as source:
        assert (source.format, source.count, source.dtype) == ("idx", 25, "uint8")
        x, y = read_all(source, rows=7)
    assert y is None
    np.testing.assert_array_equal(x, X8.reshape(25, 784))


@pytest.mark.parametrize(
    "labels_data",
    [gzip.compress(idx_labels(Y)), idx_labels(Y), npy(Y)],
    ids=["idx-gz", "idx", "npy"],
)
def test_idx_with_labels_file(labels_data: bytes) -> None:
    """A separate labels file (IDX gz/raw or .npy) is read and checked at open time."""
    with open_bytes(
        gzip.compress(idx_images(X8)),
        "imgs.gz",
        labels_file=io.BytesIO(labels_data),
        labels_filename="labels",
    ) as source:
        assert source.has_labels
        _, y = read_all(source, rows=10)
    np.testing.assert_array_equal(y, Y)


def test_npy_with_labels_file() -> None:
    """A .npy prediction input can take its labels from a labels file."""
    source = open_bytes(npy(X8), "x.npy", labels_file=io.BytesIO(npy(Y)), labels_filename="y.npy")
    with source:
        x, y = read_all(source, rows=11)
    np.testing.assert_array_equal(x, X8.reshape(25, 784))
    np.testing.assert_array_equal(y, Y)


def test_large_idx_gz_streams_exactly() -> None:
    """A gzip IDX bigger than one chunk is read back exactly."""
    big = np.random.default_rng(1).integers(0, 256, size=(9000, 28, 28), dtype=np.uint8)
    with open_bytes(gzip.compress(idx_images(big), compresslevel=1), "big.gz") as source:
        x, _ = read_all(source)
    np.testing.assert_array_equal(x, big.reshape(9000, 784))


def test_real_fashion_mnist_idx_gz_with_labels() -> None:
    """The real t10k Fashion-MNIST files open as 10,000 labelled images."""
    assert FASHION.is_dir(), f"{FASHION} (../shared/data) must sit beside the repo"
    images, labels = FASHION / "t10k-images-idx3-ubyte.gz", FASHION / "t10k-labels-idx1-ubyte.gz"
    with (
        images.open("rb") as f,
        labels.open("rb") as g,
        open_images(f, images.name, labels_file=g, labels_filename=labels.name) as source,
    ):
        x, y = read_all(source)
    expected = np.frombuffer(gzip.decompress(images.read_bytes())[16:], dtype=np.uint8)
    np.testing.assert_array_equal(x, expected.reshape(10_000, 784))
    assert y is not None and y.shape == (10_000,) and set(np.unique(y)) == set(range(10))


def test_png_zip_unlabelled_in_sorted_order() -> None:
    """PNGs outside digit folders come back unlabelled, in sorted member-name order."""
    members = {f"img_{i:02d}.png": png(X8[i]) for i in reversed(range(12))}
    members |= {"__MACOSX/._img_00.png": b"junk", ".DS_Store": b"junk", "empty/": b""}
    with open_bytes(make_zip(members), "digits.zip") as source:
        assert (source.format, source.count, source.dtype) == ("png-zip", 12, "uint8")
        assert not source.has_labels
        x, y = read_all(source, rows=5)
    assert y is None
    np.testing.assert_array_equal(x, X8[:12].reshape(12, 784))


def test_png_zip_labels_from_digit_folders() -> None:
    """A PNG in a folder named by one digit gets that digit as its label."""
    with open_bytes(png_zip(X8, Y), "digits.zip") as source:
        assert source.has_labels
        x, y = read_all(source, rows=4)
    order = sorted(range(25), key=lambda i: f"digits/{Y[i]}/{i:03d}.png")
    np.testing.assert_array_equal(x, X8[order].reshape(25, 784))
    np.testing.assert_array_equal(y, Y[order])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_png_colour_modes_convert_to_gray(mode: str) -> None:
    """Grey-valued RGB/RGBA/LA PNGs convert to exactly the same 8-bit gray pixels."""
    with open_bytes(make_zip({"a.png": png(X8[0], mode)}), "d.zip") as source:
        x, _ = read_all(source)
    np.testing.assert_array_equal(x[0], X8[0].reshape(784))


def test_spooled_temporary_file_like_starlette() -> None:
    """Starlette's SpooledTemporaryFile (rolled over to disk) works as the upload file."""
    with tempfile.SpooledTemporaryFile(max_size=1024) as spool:
        spool.write(npz(True, x=X8, y=Y))
        with open_images(spool, "in.npz") as source:  # type: ignore[arg-type]
            x, y = read_all(source, rows=10)
    np.testing.assert_array_equal(x, X8.reshape(25, 784))
    np.testing.assert_array_equal(y, Y)


def test_close_does_not_close_callers_file() -> None:
    """Closing a source releases its own handles but leaves the caller's file open."""
    file = io.BytesIO(npz(x=X8))
    source = open_images(file, "in.npz")
    source.close()
    assert not file.closed
    with pytest.raises(ValueError, match="closed"):
        source.iter_chunks()


def test_sha256_of_reads_from_start_and_rewinds() -> None:
    """sha256_of hashes the whole file from offset 0 and leaves it at 0."""
    data = npy(X8) * 3
    file = io.BytesIO(data)
    file.seek(17)
    assert sha256_of(file, chunk=1000) == (hashlib.sha256(data).hexdigest(), len(data))
    assert file.tell() == 0


# -- bad prediction inputs ---------------------------------------------------------------------

SMALL = UploadLimits(max_rows=10, max_zip_members=10, max_uncompressed_bytes=100_000)
_nan = XF.copy()
_nan[3, 100] = np.nan
_inf = XF.copy()
_inf[0, 0] = np.inf
_corrupt_npz = bytearray(npz(x=X8))
_corrupt_npz[500] ^= 0xFF  # inside x.npy's stored data: the CRC check must notice
_huge_name_zip = make_zip({f"{i}{'n' * 30_000}.png": b"" for i in range(3)})


def _bad_png(at: int) -> bytes:
    """A PNG with its signature and IHDR intact but 20 bytes at ``at`` overwritten."""
    data = bytearray(png(X8[0]))
    data[at : at + 20] = b"\xff" * 20
    return bytes(data)


def _gz_truncated() -> bytes:
    return gzip.compress(idx_images(X8)[:-1000])


def _encrypted_zip() -> bytes:
    data = bytearray(make_zip({"a.png": png(X8[0])}))
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(sig)
        data[at + flag_at] |= 0x01
    return bytes(data)


BAD_IMAGES = [
    # (name, data, filename, kwargs, error, message fragment, fails at open (else while reading))
    ("shape-783", npy(np.zeros((10, 783), np.uint8)), "x.npy", {}, InvalidInput,
     "shape (10, 783); expected (N, 28, 28) or (N, 784)", True),
    ("shape-28x27", npy(np.zeros((4, 28, 27), np.uint8)), "x.npy", {}, InvalidInput,
     "shape (4, 28, 27)", True),
    ("one-image-1d", npy(np.zeros(784, np.uint8)), "x.npy", {}, InvalidInput, "shape (784,)",
     True),
    ("zero-images", npy(np.zeros((0, 784), np.uint8)), "x.npy", {}, InvalidInput, "is empty",
     True),
    ("object-array", npy(np.array([Boom(), Boom()], dtype=object), allow_pickle=True), "x.npy",
     {}, InvalidInput, "object array", True),
    ("structured", npy(np.zeros(3, dtype=[("px", "u1", (784,))])), "x.npy", {}, InvalidInput,
     "structured dtype", True),
    ("bool", npy(np.zeros((3, 784), bool)), "x.npy", {}, InvalidInput, "dtype bool", True),
    ("complex", npy(np.zeros((3, 784), np.complex64)), "x.npy", {}, InvalidInput,
     "dtype complex64", True),
    ("strings", npy(np.full((3, 784), "a")), "x.npy", {}, InvalidInput, "dtype <U1", True),
    ("truncated-npy", npy(X8)[:-100], "x.npy", {}, InvalidInput, "truncated", True),
    ("trailing-npy", npy(X8) + npy(Y), "x.npy", {}, InvalidInput, "extra byte(s) after the", True),
    ("fortran", npy(np.asfortranarray(X8.reshape(25, 784))), "x.npy", {}, InvalidInput,
     "Fortran", True),
    ("npy-version-3", npy_header((1, 784), version=2).replace(b"\x02\x00", b"\x03\x00", 1),
     "x.npy", {}, InvalidInput, "version 3.0", True),
    ("huge-header-length", b"\x93NUMPY\x02\x00" + struct.pack("<I", 10**8) + b"{", "x.npy", {},
     InvalidInput, "100,000,000-byte .npy header", True),
    ("garbled-header", b"\x93NUMPY\x01\x00\x10\x00{'shape': 7}    \n", "x.npy", {},
     InvalidInput, "corrupt or unreadable", True),
    ("npy-declares-1e9-rows", npy_header((10**9, 784)) + b"\0" * 64, "x.npy", {},
     PayloadTooLarge, "1,000,000,000 images; at most 2,000,000", True),
    ("npy-declares-1e9-rows-high-limit", npy_header((10**9, 784)) + b"\0" * 64, "x.npy",
     {"limits": UploadLimits(max_rows=10**10)}, InvalidInput, "truncated", True),
    ("npz-declares-1e9-rows", make_zip({"x.npy": npy_header((10**9, 784), "<f8")}), "x.npz",
     {}, PayloadTooLarge, "x has 1,000,000,000 images", True),
    ("npz-declares-1e9-rows-high-limit", make_zip({"x.npy": npy_header((10**9, 784), "<f8")}),
     "x.npz", {"limits": UploadLimits(max_rows=10**10)}, InvalidInput, "x is truncated", True),
    ("zip-bomb-declared-size", npz(True, x=np.zeros((200, 784), np.uint8)), "x.npz",
     {"limits": SMALL}, PayloadTooLarge, "would expand to", True),
    ("too-many-members", png_zip(X8[:12]), "d.zip", {"limits": SMALL}, PayloadTooLarge,
     "more zip members than the 10 accepted", True),
    ("forged-member-count", patch_eocd_count(png_zip(X8[:12]), 1), "d.zip", {"limits": SMALL},
     PayloadTooLarge, "more zip members than the 10 accepted (12)", True),
    ("oversized-directory", patch_eocd_count(_huge_name_zip, 1), "d.zip",
     {"limits": UploadLimits(max_zip_members=1)}, PayloadTooLarge, "its directory is", True),
    ("nan", npy(_nan), "x.npy", {}, InvalidInput, "NaN or infinite", False),
    ("inf", npy(_inf), "x.npy", {}, InvalidInput, "NaN or infinite", False),
    ("float-0-255", npy(X8.astype(np.float32)), "x.npy", {}, InvalidInput,
     "floats must lie in [0, 1]", False),
    ("negative-float", npy(XF - 0.5), "x.npy", {}, InvalidInput, "[-0.5, 0.5]", False),
    ("int-over-255", npy(X8.astype(np.int64) + 1), "x.npy", {}, InvalidInput,
     "integer pixels must be 0..255", False),
    ("labels-out-of-range", npz(x=X8, y=Y + 10), "x.npz", {}, InvalidInput,
     "labels must be 0..9", True),
    ("labels-negative", npz(x=X8, y=Y - 10), "x.npz", {}, InvalidInput, "labels must be 0..9",
     True),
    ("labels-too-few", npz(x=X8, y=Y[:-1]), "x.npz", {}, InvalidInput,
     "y has 24 entries for 25 images", True),
    ("labels-2d", npz(x=X8, y=np.zeros((25, 2), np.int64)), "x.npz", {}, InvalidInput,
     "shape (25, 2)", True),
    ("labels-float", npz(x=X8, y=Y.astype(np.float32)), "x.npz", {}, InvalidInput,
     "labels must be integers", True),
    ("labels-object", make_zip({"x.npy": npy(X8), "y.npy": npy(np.array([Boom()] * 25),
     allow_pickle=True)}), "x.npz", {}, InvalidInput, "object array", True),
    ("npz-no-x", npz(images=X8), "x.npz", {}, InvalidInput, "no array x", True),
    ("npz-extra-member", npz(x=X8, y=Y, z=Y), "x.npz", {}, InvalidInput,
     "only x and optional y", True),
    ("npz-is-a-dataset", npz(x_train=X8, y_train=Y), "x.npz", {}, InvalidInput,
     "uploaded as datasets", True),
    ("npz-object-x", make_zip({"x.npy": npy(np.array([Boom()] * 2), allow_pickle=True)}),
     "x.npz", {}, InvalidInput, "x is an object array", True),
    ("npz-crc-mismatch", bytes(_corrupt_npz), "x.npz", {}, InvalidInput, "corrupt", False),
    ("png-wrong-size", make_zip({"a.png": png(np.zeros((27, 28), np.uint8))}), "d.zip", {},
     InvalidInput, "28x27 pixels; expected 28x28", True),
    ("png-wrong-size-later", make_zip({"a.png": png(X8[0]), "b.png": png(np.zeros((28, 30),
     np.uint8))}), "d.zip", {}, InvalidInput, "'b.png' is 30x28 pixels", False),
    ("png-too-big", make_zip({"a.png": png(X8[0])}), "d.zip",
     {"limits": UploadLimits(max_png_bytes=100)}, PayloadTooLarge, "at most 100 bytes", True),
    ("png-mixed-labels", make_zip({"3/a.png": png(X8[0]), "b.png": png(X8[1])}), "d.zip", {},
     InvalidInput, "mixes PNGs in digit folders", True),
    ("png-zip-other-file", make_zip({"a.png": png(X8[0]), "notes.txt": b"hi"}), "d.zip", {},
     InvalidInput, "may hold only .png files", True),
    ("png-zip-empty", make_zip({"dir/": b"", ".DS_Store": b"x"}), "d.zip", {}, InvalidInput,
     "contains no PNG images", True),
    ("png-not-png", make_zip({"a.png": b"GIF89a" + b"\0" * 40}), "d.zip", {}, InvalidInput,
     "is not a PNG image", True),
    ("png-bad-chunk", make_zip({"a.png": _bad_png(40)}), "d.zip", {}, InvalidInput,
     "'a.png' is corrupt or unreadable (cannot identify image file).", True),
    ("png-bad-pixels", make_zip({"a.png": _bad_png(-40)}), "d.zip", {}, InvalidInput,
     "'a.png' is corrupt or unreadable", True),
    ("png-16-bit", make_zip({"a.png": png(X8[0].astype(np.uint16) * 200)}), "d.zip", {},
     InvalidInput, "mode I;16", True),
    ("png-encrypted", _encrypted_zip(), "d.zip", {}, InvalidInput, "is encrypted", True),
    ("zip-lzma", make_zip({"x.npy": npy(X8)}, zipfile.ZIP_LZMA), "x.npz", {}, InvalidInput,
     "uses lzma compression; only stored and deflate", True),
    ("single-png", png(X8[0]), "a.png", {}, InvalidInput, "single PNG", True),
    ("garbage", b"<html>not an array</html>", "x.bin", {}, InvalidInput,
     "is not a supported image file; expected a .npy", True),
    ("garbage-named-npy", b"\x01\x02\x03garbage", "x.npy", {}, InvalidInput,
     "'x.npy' is not a .npy array", True),
    ("empty-file", b"", "x.npy", {}, InvalidInput, "'x.npy' is empty", True),
    ("pickle-renamed-npy", pickle.dumps([Boom(), X8]), "x.npy", {}, InvalidInput,
     "Python pickle, which is never loaded", True),
    ("idx-labels-as-images", idx_labels(Y), "x-idx3-ubyte", {}, InvalidInput,
     "expected 0x00000803", True),
    ("idx-float-type", struct.pack(">IIII", 0x0D03, 1, 28, 28) + b"\0" * 3136, "x-idx3", {},
     InvalidInput, "type 0x0d", True),
    ("idx-27x28", idx_images(np.zeros((2, 27, 28), np.uint8)), "x-idx3", {}, InvalidInput,
     "27x28-pixel images; expected 28x28", True),
    ("idx-truncated", idx_images(X8)[:-5], "x-idx3", {}, InvalidInput, "truncated", True),
    ("idx-trailing", idx_images(X8) + b"\0", "x-idx3", {}, InvalidInput, "extra byte(s) after",
     True),
    ("idx-gz-truncated", _gz_truncated(), "x.gz", {}, InvalidInput, "truncated", False),
    ("idx-gz-cut-off", gzip.compress(idx_images(X8))[:-40], "x.gz", {}, InvalidInput,
     "corrupt or unreadable", False),
    ("idx-gz-not-idx", gzip.compress(npy(X8)), "x.gz", {}, InvalidInput, "is not IDX images",
     True),
    ("gz-not-gzip", b"this is not gzip", "x.gz", {}, InvalidInput, "is not gzip-compressed",
     True),
    ("gz-corrupt", b"\x1f\x8b\x08\x00" + b"\xff" * 40, "x.gz", {}, InvalidInput,
     "corrupt or unreadable", True),
    ("rows-over-limit-npy", npy(X8), "x.npy", {"limits": SMALL}, PayloadTooLarge,
     "25 images; at most 10", True),
    ("rows-over-limit-idx", gzip.compress(idx_images(X8)), "x.gz", {"limits": SMALL},
     PayloadTooLarge, "at most 10", True),
    ("rows-over-limit-png", png_zip(X8[:9]), "d.zip",
     {"limits": UploadLimits(max_rows=5)}, PayloadTooLarge, "9 images; at most 5", True),
    ("upload-over-max-bytes", npy(X8), "x.npy", {"limits": UploadLimits(max_bytes=1000)},
     PayloadTooLarge, "uploads may be at most 1,000 bytes", True),
    ("labels-file-wrong-count", gzip.compress(idx_images(X8)), "x.gz",
     {"labels_file": io.BytesIO(idx_labels(Y[:20])), "labels_filename": "y.idx"},
     InvalidInput, "'y.idx' has 20 labels for 25 images", True),
    ("labels-file-out-of-range", gzip.compress(idx_images(X8)), "x.gz",
     {"labels_file": io.BytesIO(idx_labels(Y + 10)), "labels_filename": "y.idx"},
     InvalidInput, "labels must be 0..9", True),
    ("labels-file-garbage", npy(X8), "x.npy",
     {"labels_file": io.BytesIO(b"1,2,3"), "labels_filename": "y.csv"}, InvalidInput,
     "'y.csv' is not IDX labels", True),
    ("labels-twice", npz(x=X8, y=Y), "x.npz",
     {"labels_file": io.BytesIO(npy(Y)), "labels_filename": "y.npy"}, InvalidInput,
     "already contains labels", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "filename", "kwargs", "error", "fragment", "at_open"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_IMAGES],
)
def test_bad_prediction_upload_is_refused(
    data: bytes,
    filename: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    fragment: str,
    at_open: bool,
) -> None:
    """Each bad upload raises the right error, with a useful sentence, as early as it can."""
    for value in kwargs.values():
        if isinstance(value, io.BytesIO):
            value.seek(0)
    if at_open:
        with pytest.raises(error) as caught:
            open_bytes(data, filename, **kwargs)
    else:
        with open_bytes(data, filename, **kwargs) as source, pytest.raises(error) as caught:
            read_all(source, rows=4)
    message = str(caught.value)
    assert fragment in message
    assert message.endswith(".") and "\n" not in message
    assert DETONATIONS == []


def test_object_array_is_never_unpickled() -> None:
    """An object .npy whose pickle would run code is refused without unpickling it."""
    data = npy(np.array([Boom()] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(InvalidInput, match="object array"):
        open_bytes(data, "x.npy")
    with pytest.raises(InvalidInput):
        read_dataset(io.BytesIO(make_zip({"x_train.npy": data, "y_train.npy": npy(Y)})), "d.npz")
    assert DETONATIONS == []


def test_nan_deep_in_stream_names_the_rows() -> None:
    """A NaN far into the file passes open and fails on its chunk, naming the rows."""
    data = np.random.default_rng(2).random((20, 784), dtype=np.float32)
    data[17, 5] = np.nan
    with open_bytes(npy(data), "late.npy") as source:
        chunks = source.iter_chunks(rows=4)
        for _ in range(4):
            next(chunks)
        with pytest.raises(InvalidInput, match=r"'late.npy' \(rows 16 to 19\) contains NaN"):
            next(chunks)


def test_unreadable_errors_are_never_raw() -> None:
    """Random byte soup in every container never leaks a raw parser exception."""
    rng = np.random.default_rng(3)
    prefixes = [b"\x93NUMPY\x01\x00", b"PK\x03\x04", b"\x1f\x8b\x08\x00", b"\0\0\x08\x03", b""]
    for prefix in prefixes:
        for _ in range(20):
            soup = prefix + rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8).tobytes()
            with contextlib.suppress(InvalidInput), open_bytes(soup, "soup") as source:
                read_all(source)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Overwrite a few bytes, cut the data short, or insert junk."""
    out = bytearray(data)
    choice = rng.integers(0, 3)
    if choice == 0:
        for at in rng.integers(0, len(out), size=rng.integers(1, 4)):
            out[at] = rng.integers(0, 256)
    elif choice == 1:
        del out[rng.integers(0, len(out)) :]
    else:
        at = rng.integers(0, len(out))
        out[at:at] = rng.integers(0, 256, size=rng.integers(1, 50), dtype=np.uint8).tobytes()
    return bytes(out)


@pytest.mark.parametrize(
    "data",
    [npy(XF), npz(True, x=X8, y=Y), gzip.compress(idx_images(X8)), png_zip(X8[:4], Y[:4])],
    ids=["npy", "npz", "idx-gz", "png-zip"],
)
def test_damaged_uploads_fail_cleanly(data: bytes) -> None:
    """Randomly damaged valid uploads either still parse or raise InvalidInput, nothing else."""
    rng = np.random.default_rng(len(data))
    for _ in range(300):
        with contextlib.suppress(InvalidInput), open_bytes(mutate(data, rng), "f") as source:
            read_all(source, rows=10)


# -- datasets ------------------------------------------------------------------------------------

XT = RNG.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
YT = RNG.integers(0, 10, size=7)


def idx_zip(folder: str = "", compress: bool = True, test: bool = True) -> bytes:
    def wrap(data: bytes) -> bytes:
        return gzip.compress(data) if compress else data

    suffix = ".gz" if compress else ""
    members = {
        f"{folder}train-images-idx3-ubyte{suffix}": wrap(idx_images(X8)),
        f"{folder}train-labels-idx1-ubyte{suffix}": wrap(idx_labels(Y)),
    }
    if test:
        members[f"{folder}t10k-images-idx3-ubyte{suffix}"] = wrap(idx_images(XT))
        members[f"{folder}t10k-labels-idx1-ubyte{suffix}"] = wrap(idx_labels(YT))
    if folder:
        members[folder] = b""
        members["__MACOSX/._x"] = b"junk"
    return make_zip(members)


def check_dataset(ds: ParsedDataset, fmt: str, test: bool = True) -> None:
    assert ds.format == fmt
    assert (ds.train_count, ds.test_count) == (25, 7 if test else 0)
    np.testing.assert_array_equal(ds.x_train, X8.reshape(25, 784))
    np.testing.assert_array_equal(ds.y_train, Y)
    assert ds.y_train.dtype == np.uint8
    if test:
        assert ds.x_test is not None and ds.y_test is not None
        np.testing.assert_array_equal(ds.x_test, XT.reshape(7, 784))
        np.testing.assert_array_equal(ds.y_test, YT)
    else:
        assert ds.x_test is None and ds.y_test is None


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("test", [False, True])
def test_dataset_npz_round_trip(compressed: bool, test: bool) -> None:
    """A Keras-layout .npz, with or without the test split, reads back exactly."""
    arrays: dict[str, np.ndarray] = {"x_train": X8, "y_train": Y}
    if test:
        arrays |= {"x_test": XT.reshape(7, 784), "y_test": YT.reshape(7, 1)}
    check_dataset(read_dataset(io.BytesIO(npz(compressed, **arrays)), "ds.npz"), "npz", test)


def test_dataset_npz_float_pixels() -> None:
    """Float pixels in a dataset come out as float32."""
    ds = read_dataset(io.BytesIO(npz(x_train=XF.astype(np.float64), y_train=Y)), "ds.npz")
    assert ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train, XF)


@pytest.mark.parametrize(
    ("folder", "compress", "test"),
    [("", True, True), ("mnist/", True, True), ("", False, True), ("", True, False)],
)
def test_dataset_idx_zip_round_trip(folder: str, compress: bool, test: bool) -> None:
    """A zip of IDX files (gz or raw, at the top or in one folder) reads back exactly."""
    ds = read_dataset(io.BytesIO(idx_zip(folder, compress, test)), "ds.zip")
    check_dataset(ds, "idx-zip", test)


def test_dataset_real_fashion_mnist_zip() -> None:
    """The four real Fashion-MNIST files zipped in a folder read as 60,000 + 10,000 images."""
    assert FASHION.is_dir(), f"{FASHION} (../shared/data) must sit beside the repo"
    members = {f"fashion/{p.name}": p.read_bytes() for p in sorted(FASHION.glob("*.gz"))}
    ds = read_dataset(io.BytesIO(make_zip(members, zipfile.ZIP_STORED)), "fashion.zip")
    assert (ds.train_count, ds.test_count) == (60_000, 10_000)
    assert ds.x_train.shape == (60_000, 784) and ds.x_train.dtype == np.uint8
    assert ds.y_test is not None and ds.y_test.max() == 9


BAD_DATASETS = [
    ("x-test-without-y-test", npz(x_train=X8, y_train=Y, x_test=XT), InvalidInput,
     "has x_test without y_test", {}),
    ("y-test-without-x-test", npz(x_train=X8, y_train=Y, y_test=YT), InvalidInput,
     "has y_test without x_test", {}),
    ("extra-member", npz(x_train=X8, y_train=Y, notes=Y), InvalidInput,
     "'notes.npy'; a dataset .npz holds only", {}),
    ("missing-y-train", npz(x_train=X8), InvalidInput, "has no y_train", {}),
    ("mismatched-lengths", npz(x_train=X8, y_train=Y[:-3]), InvalidInput,
     "y_train has 22 entries for 25 images", {}),
    ("mismatched-test-lengths", npz(x_train=X8, y_train=Y, x_test=XT, y_test=YT[:2]),
     InvalidInput, "y_test has 2 entries for 7 images", {}),
    ("bad-train-shape", npz(x_train=np.zeros((3, 783), np.uint8), y_train=Y[:3]), InvalidInput,
     "x_train has shape (3, 783)", {}),
    ("train-nan", npz(x_train=np.full((3, 784), np.nan), y_train=Y[:3]), InvalidInput,
     "NaN", {}),
    ("declared-huge", make_zip({"x_train.npy": npy_header((10**9, 784)), "y_train.npy": npy(Y)}),
     PayloadTooLarge, "x_train has 1,000,000,000 images", {}),
    ("total-rows-over-limit", npz(x_train=X8, y_train=Y, x_test=XT, y_test=YT), PayloadTooLarge,
     "32 images; at most 30", {"limits": UploadLimits(max_dataset_rows=30)}),
    ("zip-bomb", npz(True, x_train=np.zeros((200, 784), np.uint8), y_train=np.zeros(200, int)),
     PayloadTooLarge, "would expand to", {"limits": SMALL}),
    ("single-npy", npy(X8), InvalidInput, "is a single .npy array", {}),
    ("not-zip", b"hello", InvalidInput, "is not a zip archive", {}),
    ("empty", b"", InvalidInput, "is empty", {}),
    ("pickle", pickle.dumps({"x_train": X8}), InvalidInput, "never loaded", {}),
    ("idx-missing-labels", make_zip({"train-images-idx3-ubyte.gz": gzip.compress(
     idx_images(X8))}), InvalidInput, "has no train-labels-idx1-ubyte.gz", {}),
    ("idx-test-images-only", make_zip({"train-images-idx3-ubyte": idx_images(X8),
     "train-labels-idx1-ubyte": idx_labels(Y), "t10k-images-idx3-ubyte": idx_images(XT)}),
     InvalidInput, "t10k-images-idx3-ubyte.gz without t10k-labels-idx1-ubyte.gz", {}),
    ("idx-label-count", make_zip({"train-images-idx3-ubyte": idx_images(X8),
     "train-labels-idx1-ubyte": idx_labels(Y[:5])}), InvalidInput, "5 labels for 25 images", {}),
    ("idx-unknown-member", make_zip({"train-images-idx3-ubyte": idx_images(X8),
     "train-labels-idx1-ubyte": idx_labels(Y), "README.txt": b"hi"}), InvalidInput,
     "contains 'README.txt'", {}),
    ("idx-two-folders", make_zip({"a/train-images-idx3-ubyte": idx_images(X8),
     "b/train-labels-idx1-ubyte": idx_labels(Y)}), InvalidInput, "different folders", {}),
    ("idx-duplicate", make_zip({"train-images-idx3-ubyte": idx_images(X8),
     "train-images-idx3-ubyte.gz": gzip.compress(idx_images(X8)),
     "train-labels-idx1-ubyte": idx_labels(Y)}), InvalidInput, "send one of each", {}),
    ("idx-truncated", make_zip({"train-images-idx3-ubyte": idx_images(X8)[:-9],
     "train-labels-idx1-ubyte": idx_labels(Y)}), InvalidInput, "truncated", {}),
    ("idx-gz-truncated", make_zip({"train-images-idx3-ubyte.gz": gzip.compress(
     idx_images(X8)[:-9]), "train-labels-idx1-ubyte.gz": gzip.compress(idx_labels(Y))}),
     InvalidInput, "truncated", {}),
    ("idx-rows-over-limit", idx_zip(), PayloadTooLarge, "at most 20",
     {"limits": UploadLimits(max_dataset_rows=20)}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "error", "fragment", "kwargs"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_DATASETS],
)
def test_bad_dataset_is_refused(
    data: bytes, error: type[Exception], fragment: str, kwargs: dict[str, Any]
) -> None:
    """Each bad dataset upload raises the right error with a useful sentence."""
    with pytest.raises(error) as caught:
        read_dataset(io.BytesIO(data), "ds.npz", **kwargs)
    assert fragment in str(caught.value)
    assert str(caught.value).endswith(".")
