"""Safe parsing and validation of uploaded image files (prediction inputs and datasets).

Everything is validated before it is trusted: headers and zip directories are checked against
``UploadLimits`` before anything is allocated or decompressed, nothing is ever unpickled, and
every problem raises ``InvalidInput`` (``PayloadTooLarge`` for size limits) with one sentence
saying what was wrong and what is expected.

Prediction inputs (``open_images``) are recognised by their first bytes, not their names:

- ``.npy`` of shape ``(N, 784)`` or ``(N, 28, 28)``, format version 1.0 or 2.0, C order.
- ``.npz`` (zip) holding ``x`` (as above) and optionally ``y``; no other arrays.
- IDX images (magic ``0x00000803``, ``N x 28 x 28``, unsigned bytes), raw or gzip-compressed.
- ``.zip`` of 28x28 PNGs, read in the order of their sorted member names.

Optional labels for any of them come from ``y``, the PNG folders, or ``labels_file`` (IDX
labels ``0x00000801``, raw or .gz, or a .npy of integers), never from two places at once.
Labels are read and checked by ``open_images``; pixels are streamed by
``ImageSource.iter_chunks`` and each chunk is checked as it is read, so NaN at row 900,000 or
a truncated tail raises ``InvalidInput`` mid-iteration.

Zips (.npz, PNG zips, IDX zips): member count, directory size and the sum of declared
uncompressed sizes are checked before anything is decompressed; members must be stored or
deflate-compressed (bzip2/lzma could expand unboundedly in one read), unencrypted, and not
named twice. .npy and IDX data must be exactly as long as the header declares.

Pixel dtypes: ``uint8`` is taken as is; ``float16/32/64`` must be finite and within [0, 1]
and come out as ``float32``; any other integer dtype (int8..int64, uint16..uint64, either byte
order) is accepted when every value is in 0..255 and comes out as ``uint8`` (checked per
chunk). Bool, complex, strings, object (pickled) and structured dtypes are refused.
Labels are integers 0..9, shape ``(N,)`` or ``(N, 1)``.

PNG zips:

- Labels: a PNG whose own folder is named by a single digit (``7/a.png``,
  ``testing/7/a.png``) is labelled with that digit. If every PNG is in such a folder the set
  has labels; if none is, it has none; a mix is an error.
- Skipped: directory entries, anything under ``__MACOSX/``, dotfiles and dot-folders,
  ``Thumbs.db`` and ``desktop.ini``. Any other member that is not ``*.png`` is an error.
- Each PNG must be 28x28 (checked in its IHDR header before decoding) and at most
  ``max_png_bytes``. Mode L is used as is; modes 1, LA, P, PA, RGB and RGBA are converted to
  8-bit grayscale with Pillow's ``convert("L")`` (luma, alpha ignored); 16-bit and other
  modes are refused.

Datasets (``read_dataset``) are a Keras-layout ``.npz`` (``x_train``, ``y_train``, optional
``x_test`` with ``y_test``; nothing else) or a ``.zip`` of the four MNIST IDX files
(``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, optional
``t10k-images-idx3-ubyte.gz`` with ``t10k-labels-idx1-ubyte.gz``; gzip or not, ``.idx3``
spellings accepted) side by side at the top or in one folder. Same dtype rules; train + test
images at most ``max_dataset_rows``.
"""

from shared.uploads.common import ImageSource, UploadLimits, sha256_of
from shared.uploads.dataset import ParsedDataset, read_dataset
from shared.uploads.images import open_images

__all__ = [
    "ImageSource",
    "ParsedDataset",
    "UploadLimits",
    "open_images",
    "read_dataset",
    "sha256_of",
]
