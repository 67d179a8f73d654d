"""POST /v1/jobs/predict and /v1/datasets at the API: good uploads are stored, bad ones
leave nothing behind (no job, no blob, no message)."""

import gzip
import io
import struct
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.db import session_scope
from shared.models import Blob, Job, JobStatus, JobType

RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
Y = RNG.integers(0, 10, size=20)


def npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npz(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def huge_header_npz() -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 784)}
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.npy", header.getvalue() + b"\0" * 100)
    return buf.getvalue()


def zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(200_001):
            zf.writestr(f"{i}.png", b"")
    return buf.getvalue()


def png_zip(size: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        img = io.BytesIO()
        Image.new("L", (size, size)).save(img, format="PNG")
        zf.writestr("3/a.png", img.getvalue())
    return buf.getvalue()


@pytest.fixture
def model(settings_env: dict[str, str]) -> str:
    """A succeeded train job with a stored weights blob (the API only checks it exists)."""
    from shared.storage import BlobStore

    with session_scope() as s:
        job = Job(
            type=JobType.train.value,
            status=JobStatus.succeeded.value,
            owner="admin",
            params={},
            dataset="mnist-sample",
        )
        s.add(job)
        s.flush()
        BlobStore(s).put(b"weights", owner="admin", kind="weights", job_id=job.id)
        s.commit()
        return job.id


@pytest.fixture
def nothing_left(
    settings_env: dict[str, str], queued_messages: Callable[[], int]
) -> Callable[[], None]:
    def check() -> None:
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(Job).where(Job.type == "predict")) == 0
            assert (
                s.scalar(select(func.count()).select_from(Blob).where(Blob.kind != "weights")) == 0
            )
        assert queued_messages() == 0

    return check


BAD_UPLOADS: list[tuple[str, dict[str, Any], int, str]] = [
    ("783 columns", {"file": ("x.npy", npy(np.zeros((5, 783), np.uint8)))}, 422, "783"),
    ("wrong 3-d shape", {"file": ("x.npy", npy(np.zeros((5, 27, 28), np.uint8)))}, 422, "shape"),
    (
        "object array",
        {"file": ("x.npy", npy(np.array([{"a": 1}] * 3, dtype=object), True))},
        422,
        "object",
    ),
    ("truncated npy", {"file": ("x.npy", npy(X)[:-100])}, 422, "truncated"),
    ("huge declared npz", {"file": ("x.npz", huge_header_npz())}, 413, ""),
    ("zip bomb of members", {"file": ("x.zip", zip_bomb())}, 413, ""),
    ("NaN pixels", {"file": ("x.npy", npy(np.full((3, 784), np.nan, np.float32)))}, 422, "nan"),
    ("inf pixels", {"file": ("x.npy", npy(np.full((3, 784), np.inf, np.float32)))}, 422, "inf"),
    ("labels out of range", {"file": ("x.npz", npz(x=X, y=Y + 10))}, 422, "0..9"),
    ("labels of wrong length", {"file": ("x.npz", npz(x=X, y=Y[:5]))}, 422, "5"),
    ("png of wrong size", {"file": ("x.zip", png_zip(32))}, 422, "28"),
    ("garbage", {"file": ("x.bin", b"hello world" * 10)}, 422, ""),
    ("empty file", {"file": ("x.npy", b"")}, 422, ""),
    ("not gzip", {"file": ("x.gz", b"\x1f\x8bnot really gzip")}, 422, ""),
]


@pytest.mark.parametrize(
    ("case", "files", "status", "fragment"), BAD_UPLOADS, ids=[c[0] for c in BAD_UPLOADS]
)
def test_bad_prediction_upload_is_refused(
    client: TestClient,
    model: str,
    nothing_left: Callable[[], None],
    case: str,
    files: dict[str, Any],
    status: int,
    fragment: str,
) -> None:
    """Each bad upload: the stated 4xx, one clear message, nothing recorded or queued."""
    r = client.post("/v1/jobs/predict", data={"model": model}, files=files)
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert message and fragment.lower() in message.lower() and "Traceback" not in r.text
    nothing_left()


def test_model_must_be_a_visible_succeeded_train_job(
    client: TestClient, model: str, nothing_left: Callable[[], None]
) -> None:
    """Unknown model 404, a queued train job 409, a non-train job 422."""
    files = {"file": ("x.npy", npy(X))}
    unknown = client.post("/v1/jobs/predict", data={"model": "nope"}, files=files)
    assert unknown.status_code == 404
    queued = client.post("/v1/jobs/train", json={"dataset": "mnist-sample", "epochs": 1}).json()
    r = client.post(
        "/v1/jobs/predict", json={"model": queued["id"], "dataset": "mnist-sample:test"}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "model_not_ready"
    client.post(f"/v1/jobs/{queued['id']}/cancel")


@pytest.mark.parametrize(
    "body",
    [
        {"model": "x", "dataset": "mnist-sample:validation"},
        {"model": "x", "dataset": "cifar:test"},
        {"model": "x"},
        {"model": "x", "dataset": "mnist-sample:test", "extra": 1},
    ],
)
def test_bad_named_split_requests(
    client: TestClient, model: str, body: dict[str, Any], nothing_left: Callable[[], None]
) -> None:
    """JSON predictions need exactly a model and a known split."""
    r = client.post("/v1/jobs/predict", json=body | ({"model": model} if "model" in body else {}))
    assert r.status_code == 422, r.text
    nothing_left()


@pytest.mark.parametrize("fmt", ["npy", "npz", "idx", "png"])
def test_good_uploads_are_stored_and_queued(
    client: TestClient, model: str, queued_messages: Callable[[], int], fmt: str
) -> None:
    """Every accepted format records a job with lineage and queues one message."""
    if fmt == "npy":
        files = {"file": ("x.npy", npy(X.reshape(20, 784)))}
    elif fmt == "npz":
        files = {"file": ("x.npz", npz(x=X, y=Y))}
    elif fmt == "idx":
        raw = struct.pack(">IIII", 0x803, 20, 28, 28) + X.tobytes()
        labels = struct.pack(">II", 0x801, 20) + Y.astype(np.uint8).tobytes()
        files = {
            "file": ("x-idx3-ubyte.gz", gzip.compress(raw)),
            "labels": ("y-idx1-ubyte.gz", gzip.compress(labels)),
        }
    else:
        files = {"file": ("x.zip", png_zip(28))}
    r = client.post("/v1/jobs/predict", data={"model": model}, files=files)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["type"] == "predict" and job["model"] == model
    assert job["params"]["weights_sha256"] and len(job["params"]["input"]["sha256"]) == 64
    assert job["params"]["input"]["count"] == (1 if fmt == "png" else 20)
    assert job["params"]["input"]["has_labels"] == (fmt in ("npz", "idx", "png"))
    assert queued_messages() == 1


def test_dataset_upload_and_training_on_it(client: TestClient) -> None:
    """A Keras-layout npz becomes a dataset; train jobs on upload:<id> check its size."""
    r = client.post(
        "/v1/datasets",
        files={"file": ("d.npz", npz(x_train=X, y_train=Y, x_test=X[:5], y_test=Y[:5]))},
    )
    assert r.status_code == 201, r.text
    ds = r.json()
    assert (ds["train_count"], ds["test_count"]) == (20, 5) and len(ds["sha256"]) == 64
    assert [d["id"] for d in client.get("/v1/datasets").json()["items"]] == [ds["id"]]
    ok = client.post("/v1/jobs/train", json={"dataset": f"upload:{ds['id']}", "batch_size": 20})
    assert ok.status_code == 202
    too_big = client.post(
        "/v1/jobs/train", json={"dataset": f"upload:{ds['id']}", "batch_size": 21}
    )
    assert too_big.status_code == 422
    missing = client.post(
        "/v1/jobs/train", json={"dataset": "upload:00000000-0000-0000-0000-000000000000"}
    )
    assert missing.status_code == 404


def test_bad_dataset_upload_leaves_nothing(client: TestClient) -> None:
    """A dataset with mismatched lengths is refused and stores no blob or row."""
    r = client.post("/v1/datasets", files={"file": ("d.npz", npz(x_train=X, y_train=Y[:3]))})
    assert r.status_code == 422 and "3" in r.json()["error"]["message"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Blob)) == 0
    assert client.get("/v1/datasets").json()["items"] == []
