"""``open_images``: detect a prediction upload's format from its magic bytes and open it."""

from __future__ import annotations

import zipfile
from contextlib import AbstractContextManager
from typing import BinaryIO

import numpy as np

from shared.exceptions import InvalidInput
from shared.uploads.common import (
    ACCEPTED_IMAGES,
    GZIP_MAGIC,
    NPY_MAGIC,
    PNG_MAGIC,
    ZIP_MAGICS,
    ImageSource,
    UploadLimits,
    check_rows,
    check_upload_size,
    display_name,
    extension,
    file_size,
    wrap_errors,
)
from shared.uploads.idx import (
    check_gzip_size,
    check_raw_size,
    idx_stream,
    image_count,
    iter_image_rows,
    read_idx_header,
    read_idx_labels,
)
from shared.uploads.npy import (
    check_image_header,
    check_label_header,
    file_at,
    iter_rows,
    looks_like_pickle,
    member_at,
    npy_member_header,
    read_label_member,
    read_labels,
    read_npy_header,
)
from shared.uploads.png import open_png_zip
from shared.uploads.zips import is_ignored_member, open_zip

PURPOSE = "in one prediction input"

_EXTENSION_HINTS = {
    ".npy": "is not a .npy array",
    ".npz": "is not an .npz (zip) archive",
    ".zip": "is not a zip archive",
    ".gz": "is not gzip-compressed",
}


def open_images(
    file: BinaryIO,
    filename: str,
    *,
    labels_file: BinaryIO | None = None,
    labels_filename: str | None = None,
    limits: UploadLimits = UploadLimits(),
) -> ImageSource:
    """Check a prediction upload's header and structure; the pixels are read by ``iter_chunks``.

    ``file`` is read from offset 0 and must stay open (and untouched) while the source is
    used. ``labels_file`` (IDX labels, optionally .gz, or a .npy of integers) is read and
    checked here.
    """
    what = display_name(filename)
    size = file_size(file, what)
    check_upload_size(size, limits, what)
    if size == 0:
        raise InvalidInput(f"{what} is empty; expected {ACCEPTED_IMAGES}.")
    with wrap_errors(what):
        head = file.read(8)
        file.seek(0)
    source = _open_by_magic(file, filename, head, size, limits, what)
    if labels_file is not None:
        try:
            if source.has_labels:
                raise InvalidInput(
                    f"{what} already contains labels; send them either inside the upload or as "
                    "a separate labels file, not both."
                )
            source.attach_labels(
                read_labels_file(labels_file, labels_filename, source.count, limits)
            )
        except BaseException:
            source.close()
            raise
    return source


def _open_by_magic(
    file: BinaryIO, filename: str, head: bytes, size: int, limits: UploadLimits, what: str
) -> ImageSource:
    if head.startswith(NPY_MAGIC):
        return _open_npy(file, size, limits, what)
    if head[:4] in ZIP_MAGICS:
        return _open_zip(file, filename, size, limits, what)
    if head.startswith(GZIP_MAGIC):
        return _open_idx(file, size, True, limits, what)
    if head.startswith(b"\0\0"):
        return _open_idx(file, size, False, limits, what)
    if looks_like_pickle(head):
        raise InvalidInput(
            f"{what} is a Python pickle, which is never loaded; expected {ACCEPTED_IMAGES}."
        )
    if head.startswith(PNG_MAGIC):
        raise InvalidInput(f"{what} is a single PNG; send PNGs inside a .zip.")
    problem = _EXTENSION_HINTS.get(extension(filename), "is not a supported image file")
    raise InvalidInput(f"{what} {problem}; expected {ACCEPTED_IMAGES}.")


def _open_npy(file: BinaryIO, size: int, limits: UploadLimits, what: str) -> ImageSource:
    header = read_npy_header(file, what)
    n, dtype = check_image_header(header, size - header.data_offset, limits.max_rows, what, PURPOSE)
    return ImageSource(
        count=n,
        dtype=dtype,
        format="npy",
        read_chunks=lambda rows: iter_rows(
            lambda: file_at(file, header.data_offset), header, rows, what
        ),
        name=what,
    )


def _open_zip(
    file: BinaryIO, filename: str, size: int, limits: UploadLimits, what: str
) -> ImageSource:
    zf = open_zip(file, size, limits, what)
    try:
        members = [i for i in zf.infolist() if not is_ignored_member(i.filename)]
        if extension(filename) == ".npz" or any(i.filename.endswith(".npy") for i in members):
            return _open_npz(zf, members, limits, what)
        return open_png_zip(zf, members, limits, what)
    except BaseException:
        zf.close()
        raise


def listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in sorted(names)[:limit])
    return shown + (", ..." if len(names) > limit else "") if names else "nothing"


def _open_npz(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: UploadLimits, what: str
) -> ImageSource:
    by_name = {i.filename: i for i in members}
    if "x.npy" not in by_name:
        hint = " (training sets in Keras layout are uploaded as datasets)"
        raise InvalidInput(
            f"{what} has no array x (it holds {listing(list(by_name))}); expected x and "
            f"optional y{hint if 'x_train.npy' in by_name else ''}."
        )
    extra = [n for n in by_name if n not in ("x.npy", "y.npy")]
    if extra:
        raise InvalidInput(
            f"{what} contains {listing(extra)}; an .npz for prediction holds only x and optional y."
        )
    x_info = by_name["x.npy"]
    header = npy_member_header(zf, x_info, "x")
    n, dtype = check_image_header(
        header, x_info.file_size - header.data_offset, limits.max_rows, "x", PURPOSE
    )
    labels = read_label_member(zf, by_name["y.npy"], n, "y") if "y.npy" in by_name else None
    return ImageSource(
        count=n,
        dtype=dtype,
        format="npz",
        read_chunks=lambda rows: iter_rows(
            lambda: member_at(zf, x_info, header.data_offset), header, rows, "x"
        ),
        name="x",
        labels=labels,
        on_close=zf.close,
    )


def _open_idx(
    file: BinaryIO, size: int, compressed: bool, limits: UploadLimits, what: str
) -> ImageSource:
    def opener() -> AbstractContextManager[BinaryIO]:
        return file_at(file, 0)

    with wrap_errors(what), idx_stream(opener, compressed, 0, what) as stream:
        dims = read_idx_header(stream, 3, what)
    n = image_count(dims, what)
    check_rows(n, limits.max_rows, what, PURPOSE)
    if compressed:
        check_gzip_size(n, limits, what)
    else:
        check_raw_size(n, size, what)
    return ImageSource(
        count=n,
        dtype="uint8",
        format="idx",
        read_chunks=lambda rows: iter_image_rows(opener, compressed, n, rows, what),
        name=what,
    )


def read_labels_file(
    file: BinaryIO, filename: str | None, count: int, limits: UploadLimits
) -> np.ndarray:
    """Labels for ``count`` images from IDX (optionally .gz) or .npy -> ``(count,)`` uint8."""
    what = display_name(filename, "the labels file")
    size = file_size(file, what)
    check_upload_size(size, limits, what)
    with wrap_errors(what):
        head = file.read(8)
        file.seek(0)
    if head.startswith(GZIP_MAGIC) or head.startswith(b"\0\0"):
        compressed = head.startswith(GZIP_MAGIC)
        with wrap_errors(what), idx_stream(lambda: file_at(file, 0), compressed, 0, what) as s:
            return read_idx_labels(s, count, what)
    if head.startswith(NPY_MAGIC):
        header = read_npy_header(file, what)
        check_label_header(header, size - header.data_offset, count, what)
        with wrap_errors(what), file_at(file, header.data_offset) as stream:
            return read_labels(stream, header, count, what)
    problem = "is empty" if size == 0 else "is not IDX labels (optionally .gz) or a .npy array"
    raise InvalidInput(f"{what} {problem}; expected {count:,} integer labels 0..9.")
