"""IDX files (the original MNIST format), raw or gzip-compressed.

Layout: a big-endian magic ``0x000008NN`` (``08`` = unsigned bytes, ``NN`` = number of
dimensions), the dimensions as big-endian uint32, then the uint8 data. Images are
``0x00000803`` with dimensions ``(N, 28, 28)``; labels ``0x00000801`` with ``(N,)``.
"""

from __future__ import annotations

import contextlib
import gzip
import struct
from collections.abc import Generator, Iterator
from typing import BinaryIO

import numpy as np

from shared.arrays import check_labels
from shared.catalog import NUM_PIXELS
from shared.exceptions import InvalidInput, PayloadTooLarge
from shared.uploads.common import UploadLimits, check_no_trailing, read_exact, wrap_errors
from shared.uploads.npy import StreamOpener

IMAGES_HEADER_BYTES = 16
_KINDS = {3: "images", 1: "labels"}


@contextlib.contextmanager
def idx_stream(
    open_raw: StreamOpener, compressed: bool, offset: int, what: str
) -> Iterator[BinaryIO]:
    """The (decompressed) IDX bytes from ``offset`` on; ``open_raw`` opens the file at 0."""
    with open_raw() as raw:
        if not compressed:
            read_exact(raw, offset, what)
            yield raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            read_exact(gz, offset, what)  # type: ignore[arg-type]
            yield gz  # type: ignore[misc]


def read_idx_header(stream: BinaryIO, ndim: int, what: str) -> tuple[int, ...]:
    """Check the magic for ``ndim`` dimensions of uint8 and return the dimensions."""
    kind = _KINDS[ndim]
    expected = f"0x{0x800 + ndim:08x}"
    with wrap_errors(what):
        head = read_exact(stream, 4, what)
        magic = int.from_bytes(head, "big")
        if head[:2] != b"\0\0":
            raise InvalidInput(
                f"{what} is not IDX {kind} (magic 0x{magic:08x}; expected {expected})."
            )
        if head[2] != 0x08:
            raise InvalidInput(
                f"{what} holds IDX data of type 0x{head[2]:02x}; only unsigned bytes "
                f"(magic {expected}) are accepted."
            )
        if head[3] != ndim:
            raise InvalidInput(
                f"{what} has IDX magic 0x{magic:08x}; expected {expected} for IDX {kind}."
            )
        return struct.unpack(f">{ndim}I", read_exact(stream, 4 * ndim, what))


def image_count(dims: tuple[int, ...], what: str) -> int:
    n, height, width = dims
    if (height, width) != (28, 28):
        raise InvalidInput(f"{what} holds {height}x{width}-pixel images; expected 28x28.")
    if n == 0:
        raise InvalidInput(f"{what} is empty; expected at least one image.")
    return n


def check_gzip_size(n: int, limits: UploadLimits, what: str) -> None:
    """gzip hides its real size; the IDX header's declared size is what is bounded."""
    expanded = IMAGES_HEADER_BYTES + n * NUM_PIXELS
    if expanded > limits.max_uncompressed_bytes:
        raise PayloadTooLarge(
            f"{what} would expand to {expanded:,} bytes; at most "
            f"{limits.max_uncompressed_bytes:,} bytes uncompressed are accepted."
        )


def check_raw_size(n: int, size: int, what: str) -> None:
    expected = IMAGES_HEADER_BYTES + n * NUM_PIXELS
    if size < expected:
        raise InvalidInput(
            f"{what} is truncated: its header declares {n:,} images ({expected:,} bytes) "
            f"but the file has {size:,} bytes."
        )
    if size > expected:
        raise InvalidInput(
            f"{what} has {size - expected:,} extra byte(s) after the {n:,} images its header "
            "declares."
        )


def iter_image_rows(
    open_raw: StreamOpener, compressed: bool, n: int, rows: int, what: str
) -> Generator[np.ndarray, None, None]:
    """Yield ``(k, 784)`` uint8 chunks; reads exactly the declared bytes, never more."""
    with idx_stream(open_raw, compressed, IMAGES_HEADER_BYTES, what) as stream:
        for start in range(0, n, rows):
            k = min(rows, n - start)
            data = read_exact(stream, k * NUM_PIXELS, what)
            yield np.frombuffer(data, dtype=np.uint8).reshape(k, NUM_PIXELS)
        check_no_trailing(stream, what)


def read_idx_labels(stream: BinaryIO, count: int, what: str) -> np.ndarray:
    """IDX labels for ``count`` images -> ``(count,)`` uint8; the count is checked first."""
    (n,) = read_idx_header(stream, 1, what)
    if n != count:
        raise InvalidInput(f"{what} has {n:,} labels for {count:,} images.")
    with wrap_errors(what):
        data = read_exact(stream, n, what)
        check_no_trailing(stream, what)
    return check_labels(np.frombuffer(data, dtype=np.uint8), count, what)
