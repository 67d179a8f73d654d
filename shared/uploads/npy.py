""".npy headers (parsed by ``numpy.lib.format``, never unpickled) and row-chunked reading."""

from __future__ import annotations

import contextlib
import io
import math
import struct
import zipfile
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from shared.arrays import check_labels
from shared.catalog import NUM_PIXELS
from shared.exceptions import InvalidInput
from shared.uploads.common import (
    NPY_MAGIC,
    check_no_trailing,
    check_rows,
    image_rows,
    pixel_dtype,
    read_exact,
    wrap_errors,
)

# numpy's own default for max_header_size; real headers are about 128 bytes.
MAX_HEADER_BYTES = 10_000

StreamOpener = Callable[[], AbstractContextManager[BinaryIO]]


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # bytes from the start of the .npy to its data

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def looks_like_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def read_npy_header(stream: BinaryIO, what: str) -> NpyHeader:
    """Parse a .npy header from the start of ``stream``; reads at most 12 + 10,000 bytes."""
    with wrap_errors(what):
        prefix = stream.read(8)
        if len(prefix) < 8 or not prefix.startswith(NPY_MAGIC):
            if looks_like_pickle(prefix):
                raise InvalidInput(
                    f"{what} is a Python pickle, which is never loaded; save arrays with "
                    "numpy.save instead."
                )
            raise InvalidInput(f"{what} is not a .npy array (it lacks the NumPy magic bytes).")
        version = (prefix[6], prefix[7])
        if version not in ((1, 0), (2, 0)):
            raise InvalidInput(
                f"{what} uses .npy format version {version[0]}.{version[1]}; "
                "versions 1.0 and 2.0 (what numpy.save writes for plain arrays) are accepted."
            )
        length_format = "<H" if version == (1, 0) else "<I"
        length_bytes = bytes(read_exact(stream, struct.calcsize(length_format), what))
        (header_len,) = struct.unpack(length_format, length_bytes)
        # numpy reads the whole declared header before checking its size; check it first.
        if header_len > MAX_HEADER_BYTES:
            raise InvalidInput(
                f"{what} declares a {header_len:,}-byte .npy header; at most "
                f"{MAX_HEADER_BYTES:,} bytes are accepted."
            )
        header = bytes(read_exact(stream, header_len, what))
        parse = (
            npy_format.read_array_header_1_0
            if version == (1, 0)
            else npy_format.read_array_header_2_0
        )
        shape, fortran_order, dtype = parse(
            io.BytesIO(length_bytes + header), max_header_size=MAX_HEADER_BYTES
        )
    if any(type(d) is not int or d < 0 for d in shape):
        raise InvalidInput(f"{what} declares an invalid shape {shape}.")
    return NpyHeader(tuple(shape), dtype, bool(fortran_order), 8 + len(length_bytes) + header_len)


def check_data_size(header: NpyHeader, available: int, what: str) -> None:
    """The data after the header must be exactly what the header declares."""
    if available < header.nbytes:
        raise InvalidInput(
            f"{what} is truncated: its header declares a {header.shape} {header.dtype} array "
            f"({header.nbytes:,} bytes) but only {max(available, 0):,} bytes of data follow."
        )
    if available > header.nbytes:
        raise InvalidInput(
            f"{what} has {available - header.nbytes:,} extra byte(s) after the {header.shape} "
            "array it declares; send one array per .npy file."
        )


def check_image_header(
    header: NpyHeader, available: int, max_rows: int, what: str, purpose: str
) -> tuple[int, str]:
    """(N, output dtype) for an image array header, checked before any data is read."""
    dtype = pixel_dtype(header.dtype, what)
    n = image_rows(header.shape, what)
    check_rows(n, max_rows, what, purpose)
    if header.fortran_order and n > 1:
        raise InvalidInput(
            f"{what} is stored in Fortran (column-major) order; save "
            "numpy.ascontiguousarray(x) instead."
        )
    check_data_size(header, available, what)
    return n, dtype


def check_label_header(header: NpyHeader, available: int, count: int, what: str) -> None:
    """Labels must be ``(count,)`` or ``(count, 1)`` integers; checked before reading."""
    if header.dtype.hasobject:
        raise InvalidInput(
            f"{what} is an object array (pickled Python objects), which is never loaded; "
            "labels must be integers 0..9."
        )
    if header.dtype.kind not in "iu" or header.dtype.fields is not None:
        raise InvalidInput(f"{what} has dtype {header.dtype}; labels must be integers 0..9.")
    shape = header.shape
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise InvalidInput(f"{what} has shape {shape}; expected ({count},).")
    if shape[0] != count:
        raise InvalidInput(f"{what} has {shape[0]:,} entries for {count:,} images.")
    check_data_size(header, available, what)


def read_labels(stream: BinaryIO, header: NpyHeader, count: int, what: str) -> np.ndarray:
    """Read checked label data (stream positioned after the header) -> ``(count,)`` uint8."""
    with wrap_errors(what):
        data = read_exact(stream, header.nbytes, what)
        check_no_trailing(stream, what)
    y = np.frombuffer(data, dtype=header.dtype).reshape(header.shape)
    return check_labels(y, count, what)


def iter_rows(
    open_stream: StreamOpener, header: NpyHeader, rows: int, what: str
) -> Generator[np.ndarray, None, None]:
    """Yield ``(k, 784)`` arrays of the header's dtype; the stream opens at the data."""
    row_bytes = NUM_PIXELS * header.dtype.itemsize
    n = header.shape[0]
    with open_stream() as stream:
        for start in range(0, n, rows):
            k = min(rows, n - start)
            data = read_exact(stream, k * row_bytes, what)
            yield np.frombuffer(data, dtype=header.dtype).reshape(k, NUM_PIXELS)
        check_no_trailing(stream, what)


@contextlib.contextmanager
def file_at(file: BinaryIO, offset: int) -> Iterator[BinaryIO]:
    """The caller's file at ``offset``; not closed afterwards."""
    file.seek(offset)
    yield file


@contextlib.contextmanager
def member_at(zf: zipfile.ZipFile, info: zipfile.ZipInfo, offset: int) -> Iterator[BinaryIO]:
    """A zip member's stream, ``offset`` bytes in (zip members cannot seek cheaply)."""
    with zf.open(info) as member:
        read_exact(member, offset, info.filename)  # type: ignore[arg-type]
        yield member  # type: ignore[misc]


def npy_member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> NpyHeader:
    with wrap_errors(what), zf.open(info) as member:
        return read_npy_header(member, what)  # type: ignore[arg-type]


def read_label_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, count: int, what: str
) -> np.ndarray:
    """Labels stored as a .npy inside a zip, header checked before the data is read."""
    header = npy_member_header(zf, info, what)
    check_label_header(header, info.file_size - header.data_offset, count, what)
    with wrap_errors(what), member_at(zf, info, header.data_offset) as stream:
        return read_labels(stream, header, count, what)
