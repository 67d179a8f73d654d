"""Pieces every upload format shares: limits, the streaming ``ImageSource``, error wrapping,
bounded reads and the zip-bomb checks."""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import re
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from shared.arrays import check_images
from shared.catalog import NUM_PIXELS
from shared.exceptions import InvalidInput, PayloadTooLarge

ACCEPTED_IMAGES = (
    "a .npy array of shape (N, 784) or (N, 28, 28), an .npz with x and optional y, "
    "IDX images (optionally .gz), or a .zip of 28x28 PNGs"
)

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
GZIP_MAGIC = b"\x1f\x8b"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class UploadLimits:
    """Size limits applied before anything is allocated or decompressed."""

    max_bytes: int = 1 << 30  # raw upload size
    max_rows: int = 2_000_000  # images in one prediction input
    max_dataset_rows: int = 300_000  # train + test images in one dataset upload
    max_zip_members: int = 100_000
    max_uncompressed_bytes: int = 4 << 30  # total declared uncompressed size of a zip / gz
    max_png_bytes: int = 64 << 10  # one PNG member


ChunkReader = Callable[[int], Generator[np.ndarray, None, None]]


class ImageSource:
    """A validated, not-yet-read prediction input.

    ``iter_chunks(rows)`` yields ``(images, labels)``: images ``(n, 784)`` ``uint8`` or
    ``float32`` (always ``dtype``), checked by ``shared.arrays.check_images``; labels ``(n,)``
    uint8 or None. Labels are read and checked when the source is opened. A chunk that turns out
    bad (NaN, truncated data, ...) raises ``InvalidInput`` mid-iteration. Iterating again starts
    over; one iteration at a time, and leave the underlying file alone meanwhile. ``close()``
    releases what the source opened, never the file you passed in.
    """

    def __init__(
        self,
        *,
        count: int,
        dtype: str,
        format: str,
        read_chunks: ChunkReader,
        name: str = "images",
        labels: np.ndarray | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.count = count
        self.dtype = dtype
        self.format = format
        self._read_chunks = read_chunks
        self._name = name
        self._labels = labels
        self._on_close = on_close
        self._busy = False
        self._closed = False

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    @property
    def labels(self) -> np.ndarray | None:
        """All labels ``(count,)`` uint8, already checked, or None."""
        return self._labels

    def attach_labels(self, labels: np.ndarray) -> None:
        """Set labels from a separate labels file (checked by the caller)."""
        self._labels = labels

    def iter_chunks(self, rows: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        if not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be a positive integer, not {rows!r}")
        if self._closed:
            raise ValueError("this ImageSource is closed")
        if self._busy:
            raise RuntimeError("this ImageSource is already being iterated")
        return self._iterate(rows)

    def _iterate(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        self._busy = True
        chunks = self._read_chunks(rows)
        done = 0
        try:
            while True:
                with wrap_errors(self._name):
                    raw = next(chunks, None)
                if raw is None:
                    break
                n = raw.shape[0]
                images = as_pixels(raw, f"{self._name} (rows {done} to {done + n - 1})")
                labels = None if self._labels is None else self._labels[done : done + n]
                done += n
                yield images, labels
        finally:
            self._busy = False
            chunks.close()
        if done != self.count:
            raise InvalidInput(f"{self._name} ended after {done} of {self.count} images.")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ImageSource(format={self.format!r}, count={self.count}, dtype={self.dtype!r}, "
            f"has_labels={self.has_labels})"
        )


_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


@contextlib.contextmanager
def wrap_errors(what: str) -> Iterator[None]:
    """Turn whatever a parser raises on bad bytes into one ``InvalidInput`` sentence."""
    try:
        yield
    except InvalidInput:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        struct.error,
        ValueError,
        zlib.error,
        lzma.LZMAError,
        NotImplementedError,
        RuntimeError,  # zipfile: encrypted member; RecursionError from a header
        SyntaxError,  # Pillow's way of saying "broken PNG"
        tokenize.TokenError,  # numpy re-tokenising a mangled .npy header
    ) as exc:
        reason = _OBJECT_REPR.sub("", str(exc)).strip().rstrip(".") or type(exc).__name__
        if len(reason) > 160:
            reason = reason[:157] + "..."
        raise InvalidInput(f"{what} is corrupt or unreadable ({reason}).") from exc


def display_name(filename: str | None, default: str = "the upload") -> str:
    """The client's file name, short and without directories, for messages."""
    base = os.path.basename((filename or "").replace("\\", "/"))
    if not base:
        return default
    return repr(base if len(base) <= 80 else base[:77] + "...")


def extension(filename: str | None) -> str:
    return os.path.splitext((filename or "").lower())[1]


def file_size(file: BinaryIO, what: str) -> int:
    """Size of a seekable file; leaves it at position 0."""
    with wrap_errors(what):
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(0)
    return size


def check_upload_size(size: int, limits: UploadLimits, what: str) -> None:
    if size > limits.max_bytes:
        raise PayloadTooLarge(
            f"{what} is {size:,} bytes; uploads may be at most {limits.max_bytes:,} bytes."
        )


def read_exact(stream: BinaryIO, n: int, what: str) -> bytearray:
    """Exactly ``n`` bytes (``n`` already checked against limits), or InvalidInput."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not k:
            raise InvalidInput(
                f"{what} is truncated: expected {n:,} more bytes but the data ends after {got:,}."
            )
        got += k
    return buf


def check_no_trailing(stream: BinaryIO, what: str) -> None:
    """The stream must end here (reading past the end also makes zip/gzip verify the CRC)."""
    if stream.read(1):
        raise InvalidInput(f"{what} has unexpected data after the declared array.")


def as_pixels(x: np.ndarray, name: str) -> np.ndarray:
    """Raw ``(n, 784)`` pixels of a checked dtype -> validated uint8 / float32.

    Integer dtypes other than uint8 are accepted when every value is in 0..255.
    """
    if x.dtype.kind in "iu" and x.dtype != np.uint8 and x.size:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise InvalidInput(
                f"{name} has integer pixels in [{lo}, {hi}]; integer pixels must be 0..255 "
                "(or send floats in [0, 1])."
            )
        x = x.astype(np.uint8)
    return check_images(x, name)


def pixel_dtype(dtype: np.dtype, what: str) -> str:
    """The dtype chunks will come out as, or InvalidInput for dtypes that are refused."""
    if dtype.hasobject:
        raise InvalidInput(
            f"{what} is an object array (pickled Python objects), which is never loaded; "
            "send numeric pixels (uint8 0..255 or floats in [0, 1])."
        )
    if dtype.fields is not None or dtype.subdtype is not None:
        raise InvalidInput(
            f"{what} has structured dtype {dtype}; send a plain array of uint8 0..255 "
            "or floats in [0, 1]."
        )
    if dtype.kind in "iu":
        return "uint8"
    if dtype.kind == "f" and dtype.itemsize in (2, 4, 8):
        return "float32"
    raise InvalidInput(
        f"{what} has dtype {dtype}; pixels must be integers 0..255 or floats in [0, 1]."
    )


def image_rows(shape: tuple[int, ...], what: str) -> int:
    """N for a declared image shape ``(N, 784)`` / ``(N, 28, 28)``, before any data is read."""
    if not (
        (len(shape) == 2 and shape[1] == NUM_PIXELS)
        or (len(shape) == 3 and tuple(shape[1:]) == (28, 28))
    ):
        raise InvalidInput(f"{what} has shape {tuple(shape)}; expected (N, 28, 28) or (N, 784).")
    if shape[0] == 0:
        raise InvalidInput(f"{what} is empty; expected at least one image.")
    return shape[0]


def check_rows(n: int, limit: int, what: str, purpose: str) -> None:
    if n > limit:
        raise PayloadTooLarge(f"{what} has {n:,} images; at most {limit:,} are accepted {purpose}.")


def sha256_of(file: BinaryIO, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex SHA-256, size in bytes) of the whole file, read from offset 0; seeks back to 0."""
    digest = hashlib.sha256()
    size = 0
    with wrap_errors("the upload"):
        file.seek(0)
        while block := file.read(chunk):
            digest.update(block)
            size += len(block)
        file.seek(0)
    return digest.hexdigest(), size
