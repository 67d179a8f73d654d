"""The CLI's client commands against a running stack (MNISTQ_URL / MNISTQ_API_KEY)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from shared.devstack import LocalStack


def _mnistq(stack: LocalStack, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MNISTQ_URL=stack.url, MNISTQ_API_KEY=stack.admin_key)
    exe = Path(sys.executable).with_name("mnistq")
    return subprocess.run(
        [str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180
    )


def test_train_watch_list_download_and_predict(stack: LocalStack, tmp_path: Path) -> None:
    """train --wait prints epochs; jobs lists it; weights downloads a loadable .npz;
    predict --wait returns accuracy; a bad request exits non-zero with the API's message."""
    r = _mnistq(
        stack, "train", "--dataset", "mnist-sample", "--epochs", "2", "--wait", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "epoch   1/2" in r.stdout and "epoch   2/2" in r.stdout
    job = json.loads(r.stdout[r.stdout.index("{") :])
    assert job["status"] == "succeeded"
    listing = _mnistq(stack, "jobs", "--type", "train", "--status", "succeeded", cwd=tmp_path)
    assert job["id"] in listing.stdout
    w = _mnistq(stack, "weights", job["id"], "-o", "m.npz", cwd=tmp_path)
    assert w.returncode == 0, w.stderr
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert f["W0"].shape == (784, 128)
    p = _mnistq(
        stack,
        "predict",
        "--model",
        job["id"],
        "--dataset",
        "mnist-sample:test",
        "--wait",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["result"]["count"] == 1000
    bad = _mnistq(stack, "train", "--epochs", "0", cwd=tmp_path)
    assert bad.returncode != 0 and "epochs" in bad.stderr
