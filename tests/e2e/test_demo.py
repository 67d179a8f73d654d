"""`mnistq demo` (what `make demo` runs) and the private Redis of the embedded default."""

import os
import subprocess
import sys
from pathlib import Path

from shared.devstack import LocalStack
from shared.queue import broker_answers


def test_demo_trains_predicts_and_stops(tmp_path: Path) -> None:
    """The demo trains through the queue, prints each epoch and a prediction, and exits 0."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}",
        REDIS_URL="redis://127.0.0.1:6379/11",
        KERAS_HOME=str(tmp_path / "keras"),
    )
    exe = Path(sys.executable).with_name("mnistq")
    r = subprocess.run(
        [str(exe), "demo", "--epochs", "2"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "on 'mnist-sample'" in out  # nothing in this KERAS_HOME: the bundled sample
    assert "epoch   1/2" in out and "epoch   2/2" in out
    assert "test accuracy" in out and "sha256 verified" in out
    assert "bulk prediction" in out and "confusion matrix" in out
    assert "stopped the API" in out


def test_private_redis_starts_and_stops(tmp_path: Path) -> None:
    """With no REDIS_URL the stack runs its own redis-server on a free port, then stops it."""
    stack = LocalStack(f"sqlite:///{tmp_path / 'x.db'}", redis_url=None, log_dir=tmp_path)
    stack.start_redis()
    try:
        assert stack.redis_url and ":6379/" not in stack.redis_url
        assert broker_answers(stack.redis_url)
    finally:
        stack.stop()
    assert not broker_answers(stack.redis_url, timeout=0.3)
