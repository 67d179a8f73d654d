"""Bulk prediction through the real queue: every input format, lineage, accuracy and the
confusion matrix against an independent computation, chunked streaming, result formats."""

import csv
import gzip
import io
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shared.devstack import LocalStack


@pytest.fixture(scope="package")
def sample(sample_npz: Path) -> dict[str, np.ndarray]:
    with np.load(sample_npz, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="package")
def model(stack: LocalStack) -> dict[str, Any]:
    """A small succeeded model and its downloaded weights."""
    body = {"dataset": "mnist-sample", "epochs": 3, "layers": [784, 64, 10], "seed": 1}
    job = stack.client.post("/v1/jobs/train", json=body).json()
    job = stack.wait_for_job(job["id"])
    assert job["status"] == "succeeded", (job, stack.logs())
    w = stack.client.get(f"/v1/jobs/{job['id']}/weights")
    with np.load(io.BytesIO(w.content), allow_pickle=False) as f:
        job["arrays"] = {k: f[k] for k in f.files if k != "architecture"}
    return job


def _probabilities(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Independent float64 relu/softmax forward pass."""
    a = x.reshape(len(x), 784).astype(np.float64) / (255.0 if x.dtype == np.uint8 else 1.0)
    a = np.maximum(a @ arrays["W0"] + arrays["b0"], 0)
    z = a @ arrays["W1"] + arrays["b1"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _confusion(y: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    m = np.zeros((10, 10), int)
    np.add.at(m, (y, pred), 1)
    return m.tolist()


def _run(stack: LocalStack, model: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    r = stack.client.post("/v1/jobs/predict", **kwargs)
    assert r.status_code == 202, r.text
    job = stack.wait_for_job(r.json()["id"])
    assert job["status"] == "succeeded", (job, stack.logs())
    return job


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_named_split_prediction_with_lineage(
    stack: LocalStack, model: dict[str, Any], sample: dict[str, np.ndarray]
) -> None:
    """mnist-sample:test: accuracy and confusion matrix equal an independent computation,
    and the job records model id, weights SHA-256 and input SHA-256."""
    job = _run(stack, model, json={"model": model["id"], "dataset": "mnist-sample:test"})
    pred = _probabilities(model["arrays"], sample["x_test"]).argmax(axis=1)
    result = job["result"]
    assert result["count"] == 1000
    assert result["confusion_matrix"] == _confusion(sample["y_test"], pred)
    assert result["accuracy"] == pytest.approx(float(np.mean(pred == sample["y_test"])))
    assert result["model"] == model["id"]
    assert result["weights_sha256"] == model["result"]["weights_sha256"]
    assert len(result["input_sha256"]) == 64
    again = _run(stack, model, json={"model": model["id"], "dataset": "mnist-sample:test"})
    assert again["result"]["model_cached"] is True  # one worker: loaded once, then reused
    assert again["result"]["confusion_matrix"] == result["confusion_matrix"]
    listed = stack.client.get("/v1/jobs", params={"model": model["id"]}).json()["items"]
    assert job["id"] in [j["id"] for j in listed]


@pytest.mark.parametrize("fmt", ["npy-float", "npz-labels", "idx-gz", "png-zip"])
def test_each_upload_format_end_to_end(
    stack: LocalStack, model: dict[str, Any], sample: dict[str, np.ndarray], fmt: str
) -> None:
    """Each upload format predicts the same labels as the independent forward pass."""
    x, y = sample["x_test"][:50], sample["y_test"][:50]
    files: dict[str, Any]
    if fmt == "npy-float":
        files = {"file": ("x.npy", _npy(x.reshape(50, 784).astype(np.float32) / 255))}
    elif fmt == "npz-labels":
        buf = io.BytesIO()
        np.savez(buf, x=x, y=y)
        files = {"file": ("x.npz", buf.getvalue())}
    elif fmt == "idx-gz":
        files = {
            "file": (
                "x-idx3-ubyte.gz",
                gzip.compress(struct.pack(">IIII", 0x803, 50, 28, 28) + x.tobytes()),
            ),
            "labels": (
                "y-idx1-ubyte.gz",
                gzip.compress(struct.pack(">II", 0x801, 50) + y.tobytes()),
            ),
        }
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for i, (img, label) in enumerate(zip(x, y, strict=True)):
                png = io.BytesIO()
                Image.fromarray(img, mode="L").save(png, format="PNG")
                zf.writestr(f"{label}/{i:04d}.png", png.getvalue())
        files = {"file": ("digits.zip", buf.getvalue())}
        order = sorted(range(50), key=lambda i: f"{y[i]}/{i:04d}.png")
        x, y = x[order], y[order]
    job = _run(stack, model, data={"model": model["id"]}, files=files)
    expected = _probabilities(model["arrays"], x).argmax(axis=1)
    r = stack.client.get(
        f"/v1/jobs/{job['id']}/predictions", params={"format": "npy", "field": "labels"}
    )
    labels = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert labels.shape == (50,)
    assert np.mean(labels == expected) >= 0.98  # float32 vs float64 ties may differ
    if fmt == "npy-float":
        assert job["result"]["accuracy"] is None and job["result"]["confusion_matrix"] is None
    else:
        assert job["result"]["confusion_matrix"] == _confusion(y, labels)


def test_streaming_over_several_chunks_and_result_formats(
    stack: LocalStack, model: dict[str, Any], sample: dict[str, np.ndarray]
) -> None:
    """An input larger than one worker chunk (8,192 rows) streams through and every result
    format (npy probabilities, csv, paginated json) agrees."""
    x = np.concatenate([sample["x_train"]] * 3)[:10_000]  # 10,000 rows: two chunks
    job = _run(stack, model, data={"model": model["id"]}, files={"file": ("x.npy", _npy(x))})
    assert job["result"]["count"] == 10_000
    base = f"/v1/jobs/{job['id']}/predictions"
    probs = np.load(
        io.BytesIO(stack.client.get(base, params={"format": "npy"}).content), allow_pickle=False
    )
    assert probs.shape == (10_000, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(probs, _probabilities(model["arrays"], x), atol=1e-4)
    rows = list(csv.reader(io.StringIO(stack.client.get(base, params={"format": "csv"}).text)))
    assert rows[0] == ["index", "label"] and len(rows) == 10_001
    assert [int(r[1]) for r in rows[1:]] == probs.argmax(axis=1).tolist()
    page = stack.client.get(base, params={"format": "json", "offset": 9_998, "limit": 5}).json()
    assert [i["index"] for i in page["items"]] == [9_998, 9_999] and page["next_offset"] is None
    assert page["items"][0]["label"] == int(probs[9_998].argmax())
    first = stack.client.get(base, params={"limit": 3}).json()
    assert first["next_offset"] == 3 and first["count"] == 10_000
