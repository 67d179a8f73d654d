"""``mnistq demo``: start what is needed, train through the queue, predict in bulk, stop.

Uses ``DATABASE_URL`` / ``REDIS_URL`` when set; otherwise an SQLite file and, when no Redis
answers on localhost, a private redis-server on a free port.
"""

import hashlib
import io
import os
import sys
from pathlib import Path

import numpy as np

from shared.cli import watch
from shared.devstack import LocalStack
from shared.queue import broker_answers

DEFAULT_REDIS = "redis://localhost:6379/0"


def pick_dataset() -> str:
    """The best dataset Keras can load offline, else the 5k sample that ships with mnistq."""
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    if (cache / "mnist.npz").exists():
        return "mnist"
    if (cache / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists():
        return "fashion_mnist"
    return "mnist-sample"


def run_demo(epochs: int = 5, dataset: str | None = None) -> int:
    dataset = dataset or pick_dataset()
    database_url = os.environ.get("DATABASE_URL") or "sqlite:///mnistq-demo.db"
    redis_url = os.environ.get("REDIS_URL") or (
        DEFAULT_REDIS if broker_answers(DEFAULT_REDIS) else None
    )
    print(f"database: {database_url}")
    print(f"redis:    {redis_url or 'a private redis-server (none configured or answering)'}")
    with LocalStack(database_url, redis_url=redis_url) as stack:
        print(f"API:      {stack.url}  (docs at {stack.url}/docs; logs in {stack.log_dir})\n")
        body = {"dataset": dataset, "epochs": epochs, "seed": 0}
        response = stack.client.post("/v1/jobs/train", json=body)
        response.raise_for_status()
        job = response.json()
        print(f"train job {job['id']} queued: 784-128-64-10 relu/softmax on {dataset!r}")
        job = watch(stack.client, job["id"])
        if job["status"] != "succeeded":
            print(f"\ntraining {job['status']}: {job['error']}", file=sys.stderr)
            print(stack.logs(), file=sys.stderr)
            return 1
        r = job["result"]
        print(
            f"\ntest accuracy {r['test_accuracy']:.4f}; {r['train_seconds']:.2f} s training "
            f"({r['seconds_per_epoch']:.3f} s/epoch), queued {job['queue_seconds']:.2f} s, "
            f"run {job['run_seconds']:.2f} s in total"
        )
        weights = stack.client.get(f"/v1/jobs/{job['id']}/weights")
        weights.raise_for_status()
        assert hashlib.sha256(weights.content).hexdigest() == weights.headers["X-Checksum-SHA256"]
        with np.load(io.BytesIO(weights.content), allow_pickle=False) as f:
            shapes = {name: f[name].shape for name in f.files if name != "architecture"}
        print(f"weights:  {len(weights.content):,} bytes, sha256 verified, arrays {shapes}")

        split = f"{dataset}:test"
        response = stack.client.post(
            "/v1/jobs/predict", json={"model": job["id"], "dataset": split}
        )
        response.raise_for_status()
        pred = stack.wait_for_job(response.json()["id"])
        if pred["status"] != "succeeded":
            print(f"prediction {pred['status']}: {pred['error']}", file=sys.stderr)
            return 1
        p = pred["result"]
        print(
            f"\nbulk prediction {pred['id']} on {split!r}: {p['count']:,} images, accuracy "
            f"{p['accuracy']:.4f}, {p['images_per_second']:,.0f} images/s in the worker"
        )
        print("confusion matrix (rows: true label, columns: predicted):")
        for row in p["confusion_matrix"]:
            print("  " + " ".join(f"{v:5d}" for v in row))
        first = stack.client.get(
            f"/v1/jobs/{pred['id']}/predictions", params={"format": "json", "limit": 5}
        ).json()
        print("first predictions:", [item["label"] for item in first["items"]])
    print("\nstopped the API, the worker and anything else the demo started.")
    return 0
