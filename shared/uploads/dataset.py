"""``read_dataset``: a labelled training set (Keras-layout .npz or a zip of IDX files)."""

from __future__ import annotations

import contextlib
import posixpath
import zipfile
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from shared.catalog import NUM_PIXELS
from shared.exceptions import InvalidInput, PayloadTooLarge
from shared.uploads.common import (
    GZIP_MAGIC,
    NPY_MAGIC,
    ZIP_MAGICS,
    ChunkReader,
    ImageSource,
    UploadLimits,
    check_rows,
    check_upload_size,
    display_name,
    file_size,
    wrap_errors,
)
from shared.uploads.idx import (
    IMAGES_HEADER_BYTES,
    check_raw_size,
    idx_stream,
    image_count,
    iter_image_rows,
    read_idx_header,
    read_idx_labels,
)
from shared.uploads.images import listing
from shared.uploads.npy import (
    NpyHeader,
    check_image_header,
    iter_rows,
    looks_like_pickle,
    member_at,
    npy_member_header,
    read_label_member,
)
from shared.uploads.zips import is_ignored_member, open_zip

PURPOSE = "in one dataset"
ACCEPTED_DATASETS = (
    "an .npz with x_train, y_train and optional x_test, y_test, or a .zip of the MNIST IDX "
    "files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz and optionally "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)"
)
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_IDX_FILES = {
    "train-images-idx3-ubyte": ("train", 3),
    "train-labels-idx1-ubyte": ("train", 1),
    "t10k-images-idx3-ubyte": ("test", 3),
    "t10k-labels-idx1-ubyte": ("test", 1),
}


@dataclass(frozen=True, eq=False)
class ParsedDataset:
    """A checked training set: ``x_*`` ``(n, 784)`` uint8 or float32, ``y_*`` ``(n,)`` uint8."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    format: str  # "npz" | "idx-zip"

    @property
    def train_count(self) -> int:
        return int(self.y_train.shape[0])

    @property
    def test_count(self) -> int:
        return 0 if self.y_test is None else int(self.y_test.shape[0])


def read_dataset(
    file: BinaryIO, filename: str, *, limits: UploadLimits = UploadLimits()
) -> ParsedDataset:
    """Check and read a whole dataset upload; every header is checked before any data."""
    what = display_name(filename)
    size = file_size(file, what)
    check_upload_size(size, limits, what)
    with wrap_errors(what):
        head = file.read(8)
        file.seek(0)
    if head[:4] not in ZIP_MAGICS:
        if size == 0:
            problem = "is empty"
        elif looks_like_pickle(head):
            problem = "is a Python pickle, which is never loaded"
        elif head.startswith(NPY_MAGIC):
            problem = "is a single .npy array"
        else:
            problem = "is not a zip archive"
        raise InvalidInput(f"{what} {problem}; expected {ACCEPTED_DATASETS}.")
    with contextlib.closing(open_zip(file, size, limits, what)) as zf:
        members = [i for i in zf.infolist() if not is_ignored_member(i.filename)]
        if any(i.filename.endswith(".npy") for i in members):
            return _read_npz(zf, members, limits, what)
        return _read_idx_zip(zf, members, limits, what)


def _read_all(source: ImageSource) -> np.ndarray:
    out = np.empty((source.count, NUM_PIXELS), dtype=source.dtype)
    done = 0
    for x, _ in source.iter_chunks():
        out[done : done + x.shape[0]] = x
        done += x.shape[0]
    return out


def _read_npz(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: UploadLimits, what: str
) -> ParsedDataset:
    by_name = {i.filename.removesuffix(".npy"): i for i in members}
    extra = [i.filename for i in members if i.filename.removesuffix(".npy") not in _NPZ_KEYS]
    if extra:
        raise InvalidInput(
            f"{what} contains {listing(extra)}; a dataset .npz holds only x_train, y_train and "
            "optional x_test, y_test."
        )
    for needed in ("x_train", "y_train"):
        if needed not in by_name:
            raise InvalidInput(
                f"{what} has no {needed} (it holds {listing(list(by_name))}); expected "
                "x_train, y_train and optional x_test, y_test."
            )
    if ("x_test" in by_name) != ("y_test" in by_name):
        have, missing = ("x_test", "y_test") if "x_test" in by_name else ("y_test", "x_test")
        raise InvalidInput(f"{what} has {have} without {missing}; send both or neither.")
    splits = ["train", "test"] if "x_test" in by_name else ["train"]
    headers: dict[str, NpyHeader] = {}
    counts: dict[str, int] = {}
    dtypes: dict[str, str] = {}
    for split in splits:
        info = by_name[f"x_{split}"]
        headers[split] = header = npy_member_header(zf, info, f"x_{split}")
        available = info.file_size - header.data_offset
        counts[split], dtypes[split] = check_image_header(
            header, available, limits.max_dataset_rows, f"x_{split}", PURPOSE
        )
    check_rows(sum(counts.values()), limits.max_dataset_rows, what, PURPOSE)
    arrays: dict[str, np.ndarray] = {}
    for split in splits:  # labels are small and their headers fail fast: read them first
        name = f"y_{split}"
        arrays[name] = read_label_member(zf, by_name[name], counts[split], name)
    for split in splits:
        name = f"x_{split}"
        source = ImageSource(
            count=counts[split],
            dtype=dtypes[split],
            format="npz",
            read_chunks=_npz_reader(zf, by_name[name], headers[split], name),
            name=name,
        )
        arrays[name] = _read_all(source)
    return ParsedDataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays.get("x_test"),
        y_test=arrays.get("y_test"),
        format="npz",
    )


def _idx_key(member: str) -> str:
    """``train-images.idx3-ubyte.gz`` and friends -> ``train-images-idx3-ubyte``."""
    base = posixpath.basename(member.replace("\\", "/")).lower()
    return base.removesuffix(".gz").replace(".", "-")


class _IdxMember:
    """One IDX file inside the zip, gzip-compressed or not (decided by its magic bytes)."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self.zf, self.info, self.what = zf, info, repr(info.filename)
        with wrap_errors(self.what), zf.open(info) as member:
            self.compressed = member.read(2) == GZIP_MAGIC

    def open_raw(self) -> AbstractContextManager[BinaryIO]:
        return member_at(self.zf, self.info, 0)

    def stream(self) -> AbstractContextManager[BinaryIO]:
        return idx_stream(self.open_raw, self.compressed, 0, self.what)


def _read_idx_zip(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: UploadLimits, what: str
) -> ParsedDataset:
    found: dict[tuple[str, int], _IdxMember] = {}
    for info in members:
        key = _IDX_FILES.get(_idx_key(info.filename))
        if key is None:
            raise InvalidInput(f"{what} contains {info.filename!r}; expected {ACCEPTED_DATASETS}.")
        if key in found:
            raise InvalidInput(
                f"{what} contains both {found[key].info.filename!r} and {info.filename!r}; "
                "send one of each IDX file."
            )
        found[key] = _IdxMember(zf, info)
    if len({posixpath.dirname(m.info.filename) for m in found.values()}) > 1:
        raise InvalidInput(f"{what} has its IDX files in different folders; keep them together.")
    for needed in (("train", 3), ("train", 1)):
        if needed not in found:
            raise InvalidInput(f"{what} has no {_name_of(needed)}; expected {ACCEPTED_DATASETS}.")
    if (("test", 3) in found) != (("test", 1) in found):
        have, missing = (3, 1) if ("test", 3) in found else (1, 3)
        raise InvalidInput(
            f"{what} has {_name_of(('test', have))} without {_name_of(('test', missing))}; "
            "send both or neither."
        )
    splits = ["train", "test"] if ("test", 3) in found else ["train"]
    counts: dict[str, int] = {}
    for split in splits:
        images = found[(split, 3)]
        with wrap_errors(images.what), images.stream() as stream:
            dims = read_idx_header(stream, 3, images.what)
        counts[split] = n = image_count(dims, images.what)
        check_rows(n, limits.max_dataset_rows, images.what, PURPOSE)
        if not images.compressed:
            check_raw_size(n, images.info.file_size, images.what)
    check_rows(sum(counts.values()), limits.max_dataset_rows, what, PURPOSE)
    # gzip hides its real size: bound what the IDX headers declare (images + labels files).
    expanded = sum(IMAGES_HEADER_BYTES + 8 + n * (NUM_PIXELS + 1) for n in counts.values())
    if expanded > limits.max_uncompressed_bytes:
        raise PayloadTooLarge(
            f"{what} would expand to {expanded:,} bytes; at most "
            f"{limits.max_uncompressed_bytes:,} bytes uncompressed are accepted."
        )
    arrays: dict[str, np.ndarray] = {}
    for split in splits:
        labels = found[(split, 1)]
        with wrap_errors(labels.what), labels.stream() as stream:
            arrays[f"y_{split}"] = read_idx_labels(stream, counts[split], labels.what)
    for split in splits:
        images = found[(split, 3)]
        source = ImageSource(
            count=counts[split],
            dtype="uint8",
            format="idx",
            read_chunks=_idx_reader(images, counts[split]),
            name=images.what,
        )
        arrays[f"x_{split}"] = _read_all(source)
    return ParsedDataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays.get("x_test"),
        y_test=arrays.get("y_test"),
        format="idx-zip",
    )


def _npz_reader(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, header: NpyHeader, name: str
) -> ChunkReader:
    return lambda rows: iter_rows(
        lambda: member_at(zf, info, header.data_offset), header, rows, name
    )


def _idx_reader(member: _IdxMember, n: int) -> ChunkReader:
    return lambda rows: iter_image_rows(member.open_raw, member.compressed, n, rows, member.what)


def _name_of(key: tuple[str, int]) -> str:
    return next(f"{name}.gz" for name, k in _IDX_FILES.items() if k == key)
