"""Validation of image and label arrays: the one place that decides what an image set is.

Images are ``(N, 28, 28)`` or ``(N, 784)``, either ``uint8`` 0..255 or floating point in
[0, 1]. Labels are integers 0..9, one per image. Used for built-in datasets, uploads
and prediction inputs alike.
"""

import numpy as np

from shared.catalog import NUM_CLASSES, NUM_PIXELS
from shared.exceptions import InvalidInput

IMAGE_SHAPE_TEXT = "(N, 28, 28) or (N, 784)"


def check_images(x: np.ndarray, name: str = "images") -> np.ndarray:
    """Validate an image array and return it as ``(N, 784)``, ``uint8`` or ``float32``.

    uint8 arrays are returned as they are (a view); floating arrays are checked to be finite
    and within [0, 1] and returned as float32. Anything else raises ``InvalidInput``.
    """
    if not isinstance(x, np.ndarray):
        raise InvalidInput(f"{name} must be an array, not {type(x).__name__}.")
    if x.dtype.hasobject or x.dtype.fields is not None:
        raise InvalidInput(f"{name} has dtype {x.dtype}; object and structured arrays are refused.")
    if x.ndim == 3 and x.shape[1:] == (28, 28):
        x = x.reshape(x.shape[0], NUM_PIXELS)
    elif not (x.ndim == 2 and x.shape[1] == NUM_PIXELS):
        raise InvalidInput(
            f"{name} has shape {tuple(x.shape)}; expected {IMAGE_SHAPE_TEXT} with N >= 1."
        )
    if x.shape[0] == 0:
        raise InvalidInput(f"{name} is empty; expected at least one image.")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        x32 = x.astype(np.float32, copy=False)
        if not np.isfinite(x32).all():
            raise InvalidInput(f"{name} contains NaN or infinite values.")
        lo, hi = float(x32.min()), float(x32.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidInput(
                f"{name} has float pixels in [{lo:g}, {hi:g}]; floats must lie in [0, 1] "
                "(or send uint8 0..255)."
            )
        return x32
    raise InvalidInput(
        f"{name} has dtype {x.dtype}; pixels must be uint8 0..255 or floats in [0, 1]."
    )


def check_labels(y: np.ndarray, count: int, name: str = "labels") -> np.ndarray:
    """Validate labels for ``count`` images and return them as ``(count,)`` uint8."""
    if not isinstance(y, np.ndarray):
        raise InvalidInput(f"{name} must be an array, not {type(y).__name__}.")
    if y.dtype.hasobject or y.dtype.kind not in "iu":
        raise InvalidInput(f"{name} has dtype {y.dtype}; labels must be integers 0..9.")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise InvalidInput(f"{name} has shape {tuple(y.shape)}; expected (N,).")
    if y.shape[0] != count:
        raise InvalidInput(f"{name} has {y.shape[0]} entries for {count} images.")
    if count and (int(y.min()) < 0 or int(y.max()) >= NUM_CLASSES):
        raise InvalidInput(
            f"{name} has labels in [{int(y.min())}, {int(y.max())}]; labels must be 0..9."
        )
    return y.astype(np.uint8, copy=False)


def to_float32(x: np.ndarray) -> np.ndarray:
    """Checked pixels (see ``check_images``) as float32 in [0, 1], shape ``(N, 784)``."""
    if x.dtype == np.uint8:
        out = x.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out
    return x.astype(np.float32, copy=False)
