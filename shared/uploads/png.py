"""A .zip of 28x28 PNG digits (rules in the ``shared.uploads`` docstring)."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Generator

import numpy as np
from PIL import Image

from shared.catalog import NUM_PIXELS
from shared.exceptions import InvalidInput, PayloadTooLarge
from shared.uploads.common import (
    PNG_MAGIC,
    ImageSource,
    UploadLimits,
    check_rows,
    wrap_errors,
)

# Converted to 8-bit grayscale with Pillow's convert("L") (ITU-R 601-2 luma; alpha ignored).
CONVERTIBLE_MODES = frozenset({"L", "1", "LA", "P", "PA", "RGB", "RGBA"})
ACCEPTED_PNG_ZIP = "28x28 .png files, optionally in folders 0..9 that give their labels"


def folder_label(name: str) -> int | None:
    """7 for ``.../7/x.png``: the PNG's own folder is a single digit; else None."""
    parts = name.replace("\\", "/").split("/")
    if len(parts) >= 2 and len(parts[-2]) == 1 and parts[-2] in "0123456789":
        return int(parts[-2])
    return None


def decode_png(data: bytes, what: str) -> np.ndarray:
    """One PNG -> ``(784,)`` uint8; the IHDR size is checked before Pillow decodes anything."""
    if not data.startswith(PNG_MAGIC):
        raise InvalidInput(f"{what} is not a PNG image.")
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InvalidInput(f"{what} is not a valid PNG (its IHDR header is missing).")
    width, height = struct.unpack(">II", data[16:24])
    if (width, height) != (28, 28):
        raise InvalidInput(f"{what} is {width}x{height} pixels; expected 28x28.")
    with wrap_errors(what):
        try:
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                if image.mode not in CONVERTIBLE_MODES:
                    raise InvalidInput(
                        f"{what} has PNG mode {image.mode}; expected 8-bit grayscale, "
                        "colour or palette."
                    )
                image.load()
                gray: Image.Image = image
                if image.mode in ("P", "PA"):
                    gray = gray.convert("RGBA")
                if gray.mode != "L":
                    gray = gray.convert("L")
                return np.asarray(gray, dtype=np.uint8).reshape(NUM_PIXELS)
        except (Image.DecompressionBombError, IndexError, TypeError, KeyError) as exc:
            raise OSError(str(exc)) from exc  # reported by wrap_errors like any bad PNG


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: UploadLimits) -> np.ndarray:
    what = repr(info.filename)
    with wrap_errors(what), zf.open(info) as member:
        data = member.read(limits.max_png_bytes + 1)
    if len(data) > limits.max_png_bytes:
        raise PayloadTooLarge(f"{what} is larger than {limits.max_png_bytes:,} bytes.")
    return decode_png(data, what)


def open_png_zip(
    zf: zipfile.ZipFile, members: list[zipfile.ZipInfo], limits: UploadLimits, what: str
) -> ImageSource:
    """Check names, sizes, the labels rule and the first image; decode the rest lazily."""
    infos = sorted(members, key=lambda i: i.filename)
    if not infos:
        raise InvalidInput(f"{what} contains no PNG images; expected {ACCEPTED_PNG_ZIP}.")
    for info in infos:
        if not info.filename.lower().endswith(".png"):
            raise InvalidInput(
                f"{what} contains {info.filename!r}; a zip of digits may hold only .png files."
            )
        if info.file_size > limits.max_png_bytes:
            raise PayloadTooLarge(
                f"{info.filename!r} is {info.file_size:,} bytes; each PNG may be at most "
                f"{limits.max_png_bytes:,} bytes."
            )
    check_rows(len(infos), limits.max_rows, what, "in one prediction input")
    labels = [folder_label(i.filename) for i in infos]
    labelled = [i.filename for i, y in zip(infos, labels, strict=True) if y is not None]
    if labelled and len(labelled) < len(infos):
        unlabelled = next(i.filename for i, y in zip(infos, labels, strict=True) if y is None)
        raise InvalidInput(
            f"{what} mixes PNGs in digit folders (like {labelled[0]!r}) with PNGs outside them "
            f"(like {unlabelled!r}); put every PNG in a folder 0..9 for labels, or none."
        )
    y = np.array(labels, dtype=np.uint8) if labelled else None
    read_member(zf, infos[0], limits)

    def read_chunks(rows: int) -> Generator[np.ndarray, None, None]:
        for start in range(0, len(infos), rows):
            batch = infos[start : start + rows]
            out = np.empty((len(batch), NUM_PIXELS), dtype=np.uint8)
            for i, info in enumerate(batch):
                out[i] = read_member(zf, info, limits)
            yield out

    return ImageSource(
        count=len(infos),
        dtype="uint8",
        format="png-zip",
        read_chunks=read_chunks,
        name=what,
        labels=y,
        on_close=zf.close,
    )
