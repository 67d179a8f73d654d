"""Train through the real queue: submit, watch epochs arrive, download and check weights."""

import hashlib
import io
import time
from pathlib import Path

import numpy as np

from shared.devstack import LocalStack


def _forward(arrays: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """An independent relu/softmax forward pass over the downloaded arrays."""
    n = sum(1 for k in arrays if k.startswith("W"))
    a = x
    for i in range(n):
        z = a @ arrays[f"W{i}"].astype(np.float64) + arrays[f"b{i}"].astype(np.float64)
        a = np.maximum(z, 0) if i < n - 1 else z
    return a.argmax(axis=1)


def wait_for_epochs(stack: LocalStack, job_id: str, count: int, timeout: float = 120) -> None:
    """Return once ``count`` epochs of the job are recorded."""
    deadline = time.monotonic() + timeout
    while len(stack.client.get(f"/v1/jobs/{job_id}/epochs").json()["items"]) < count:
        assert time.monotonic() < deadline, stack.logs()
        time.sleep(0.05)


def test_train_job_end_to_end(stack: LocalStack, sample_npz: Path) -> None:
    """A 2-epoch job runs in the worker, shows epochs while running, and its weights
    reproduce the reported test accuracy."""
    body = {
        "dataset": "mnist-sample",
        "epochs": 2,
        "layers": [784, 2048, 10],
        "batch_size": 8,
        "seed": 7,
    }
    r = stack.client.post("/v1/jobs/train", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    seen_running_with_epochs = seen_batches = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = stack.client.get(f"/v1/jobs/{job_id}").json()
        epochs = stack.client.get(f"/v1/jobs/{job_id}/epochs").json()["items"]
        if job["status"] == "running" and len(epochs) == 1:
            seen_running_with_epochs = True
            assert job["progress"]["epoch"] >= 1 and job["progress"]["epochs"] == 2
        if job["status"] == "running" and job["progress"] and "batch" in job["progress"]:
            seen_batches = True
            progress = job["progress"]
            assert 1 <= progress["batch"] <= progress["batches"] == 500
            assert 0 <= progress["fraction"] < 1
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert seen_running_with_epochs, "never saw a finished epoch while the job was running"
    assert seen_batches, "never saw batch-level progress while the job was running"
    assert job["attempt"] == 1 and job["worker"] and job["started_at"] and job["finished_at"]
    assert job["queue_seconds"] >= 0 and job["run_seconds"] > 0
    epochs = stack.client.get(f"/v1/jobs/{job_id}/epochs").json()["items"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(0.5 < e["val_accuracy"] <= 1 and e["loss"] > 0 for e in epochs)

    w = stack.client.get(f"/v1/jobs/{job_id}/weights")
    assert w.status_code == 200 and w.headers["content-type"] == "application/octet-stream"
    assert hashlib.sha256(w.content).hexdigest() == w.headers["X-Checksum-SHA256"]
    assert w.headers["ETag"] == f'"{w.headers["X-Checksum-SHA256"]}"'
    assert (
        stack.client.get(
            f"/v1/jobs/{job_id}/weights", headers={"If-None-Match": w.headers["ETag"]}
        ).status_code
        == 304
    )
    with np.load(io.BytesIO(w.content), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert arrays["W0"].shape == (784, 2048) and arrays["W1"].shape == (2048, 10)
    with np.load(sample_npz, allow_pickle=False) as f:
        x_test = f["x_test"].reshape(-1, 784).astype(np.float64) / 255.0
        y_test = f["y_test"]
    accuracy = float(np.mean(_forward(arrays, x_test) == y_test))
    assert abs(accuracy - job["result"]["test_accuracy"]) < 2e-3
    assert job["result"]["weights_sha256"] == w.headers["X-Checksum-SHA256"]


def test_cancel_running_job_stops_at_a_batch_boundary(stack: LocalStack) -> None:
    """Cancelling a running job ends it cancelled well before it would have finished."""
    body = {"dataset": "mnist-sample", "epochs": 500, "layers": [784, 1024, 10], "batch_size": 4}
    job_id = stack.client.post("/v1/jobs/train", json=body).json()["id"]
    stack.wait_for_job(job_id, timeout=60, statuses=("running",))
    r = stack.client.post(f"/v1/jobs/{job_id}/cancel")
    assert r.status_code == 202 and r.json()["cancel_requested"]
    job = stack.wait_for_job(job_id, timeout=30)
    assert job["status"] == "cancelled", job
    assert job["error"]["code"] == "cancelled"
    assert stack.client.get(f"/v1/jobs/{job_id}/weights").status_code == 409


def test_unavailable_dataset_fails_clearly_and_worker_goes_on(stack: LocalStack) -> None:
    """Keras cannot download MNIST here: the job fails fast with where to put the file,
    and the same worker then runs the next job."""
    started = time.monotonic()
    job_id = stack.client.post("/v1/jobs/train", json={"dataset": "mnist", "epochs": 1}).json()[
        "id"
    ]
    job = stack.wait_for_job(job_id, timeout=60)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "dataset_unavailable"
    assert "mnist.npz" in job["error"]["message"]
    assert time.monotonic() - started < 45
    ok = stack.client.post("/v1/jobs/train", json={"dataset": "mnist-sample", "epochs": 1}).json()
    assert stack.wait_for_job(ok["id"], timeout=60)["status"] == "succeeded"


def test_training_on_an_uploaded_dataset(stack: LocalStack, sample_npz: Path) -> None:
    """POST /v1/datasets then train on upload:<id>, with and without a test split."""
    with np.load(sample_npz, allow_pickle=False) as f:
        x, y = f["x_train"][:600], f["y_train"][:600]
    for with_test in (True, False):
        arrays = {"x_train": x[:500], "y_train": y[:500]}
        if with_test:
            arrays |= {"x_test": x[500:], "y_test": y[500:]}
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        ds = stack.client.post("/v1/datasets", files={"file": ("mine.npz", buf.getvalue())})
        assert ds.status_code == 201, ds.text
        body = {"dataset": f"upload:{ds.json()['id']}", "epochs": 3, "learning_rate": 0.1}
        job = stack.client.post("/v1/jobs/train", json=body).json()
        job = stack.wait_for_job(job["id"])
        assert job["status"] == "succeeded", (job, stack.logs())
        assert job["result"]["train_count"] == 500
        if with_test:
            assert 0.5 < job["result"]["test_accuracy"] <= 1
        else:
            assert job["result"]["test_accuracy"] is None


def test_lost_worker_is_reaped_and_the_job_resumes_identically(stack: LocalStack) -> None:
    """Kill the worker mid-job: the lease expires, another worker resumes from the last
    checkpoint, and the final weights equal an uninterrupted run's bit for bit."""
    import psutil

    body = {
        "dataset": "mnist-sample",
        "epochs": 6,
        "layers": [784, 512, 10],
        "batch_size": 4,
        "seed": 11,
    }
    job_id = stack.client.post("/v1/jobs/train", json=body).json()["id"]
    wait_for_epochs(stack, job_id, 2)
    for proc in list(stack.worker_procs):
        parent = psutil.Process(proc.pid)
        for p in [*parent.children(recursive=True), parent]:
            p.kill()
        proc.wait()
        stack.worker_procs.remove(proc)
    stack.start_worker("worker-replacement")
    job = stack.wait_for_job(job_id, timeout=180)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["attempt"] == 2 and job["result"]["resumed_from_epoch"] >= 2
    epochs = stack.client.get(f"/v1/jobs/{job_id}/epochs").json()["items"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5, 6]
    again = stack.client.post("/v1/jobs/train", json=body).json()
    again = stack.wait_for_job(again["id"], timeout=180)
    assert again["result"]["weights_sha256"] == job["result"]["weights_sha256"]


def test_cancel_then_retry_resumes_to_the_same_weights(stack: LocalStack) -> None:
    """A running job cancelled after two epochs and then retried resumes from its checkpoint
    and ends with the weights of an uninterrupted run."""
    body = {
        "dataset": "mnist-sample",
        "epochs": 5,
        "layers": [784, 256, 10],
        "batch_size": 4,
        "seed": 5,
    }
    job_id = stack.client.post("/v1/jobs/train", json=body).json()["id"]
    wait_for_epochs(stack, job_id, 2)
    stack.client.post(f"/v1/jobs/{job_id}/cancel")
    assert stack.wait_for_job(job_id)["status"] == "cancelled"
    r = stack.client.post(f"/v1/jobs/{job_id}/retry")
    assert r.status_code == 202, r.text
    job = stack.wait_for_job(job_id, timeout=180)
    assert job["status"] == "succeeded", (job, stack.logs())
    assert job["retries"] == 1 and job["result"]["resumed_from_epoch"] >= 2
    plain = stack.client.post("/v1/jobs/train", json=body).json()
    plain = stack.wait_for_job(plain["id"], timeout=180)
    assert plain["result"]["weights_sha256"] == job["result"]["weights_sha256"]
