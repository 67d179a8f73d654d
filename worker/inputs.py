"""Where a job's arrays come from: built-in datasets, user uploads, stored models."""

import io
from dataclasses import replace
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from shared import datasets
from shared.catalog import UPLOAD_PREFIX
from shared.exceptions import InvalidInput
from shared.mlp import Network, weights_from_bytes
from shared.models import BlobKind, Dataset
from shared.storage import BlobStore
from worker.runtime import LruCache

_DATASETS: LruCache[str, datasets.Dataset] = LruCache(size=3)
_MODELS: LruCache[str, Network] = LruCache(size=8)


def training_data(session: Session, name: str) -> datasets.Dataset:
    """The dataset a train job names, kept in memory for the next job."""
    if not name.startswith(UPLOAD_PREFIX):
        return datasets.load_builtin(name)  # cached inside shared.datasets
    dataset_id = name[len(UPLOAD_PREFIX) :]
    row = session.get(Dataset, dataset_id)
    if row is None:
        raise InvalidInput(f"dataset {name!r} no longer exists.")

    def load() -> datasets.Dataset:
        raw = BlobStore(session).read(row.blob_id)
        with np.load(io.BytesIO(raw), allow_pickle=False) as f:
            arrays: dict[str, Any] = {k: f[k] for k in f.files}
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        if "x_test" in arrays:
            return datasets.from_arrays(name, x_train, y_train, arrays["x_test"], arrays["y_test"])
        # No test split: validate the training part, then leave the test split empty.
        data = datasets.from_arrays(name, x_train, y_train, x_train[:1], y_train[:1])
        return replace(data, x_test=np.zeros((0, 784), np.float32), y_test=np.zeros((0,), np.uint8))

    return _DATASETS.get(row.sha256 + row.id, load)


def model_for(session: Session, model_job_id: str) -> tuple[Network, str, bool]:
    """A trained network by its job id, cached by the weights' SHA-256.

    Returns ``(network, weights_sha256, came_from_cache)``.
    """
    store = BlobStore(session)
    blob = store.find(model_job_id, BlobKind.weights)
    if blob is None:
        raise InvalidInput(f"train job {model_job_id!r} has no stored weights.")
    misses = _MODELS.misses
    network = _MODELS.get(blob.sha256, lambda: weights_from_bytes(store.read(blob.id)))
    return network, blob.sha256, _MODELS.misses == misses
