"""Benchmark the NumPy core against the seed's reference MLP, side by side, in one run.

    .venv/bin/python -m bench.core [--epochs 3] [--data ../shared/data/fashion-mnist]

Both sides train the seed's configuration (784-128-64-10, relu, softmax, cross-entropy,
lr 0.01, batch 64, full training-set accuracy after every epoch) on the same data, each in a
fresh child process so their memory figures are independent:

* seed: ``seed_mlp.py`` (path: ``--seed-script``) is loaded from its file and its own
  ``main()`` runs unchanged; the child only wraps its ``train`` to read memory around it and
  times ``predict`` on the test images afterwards.
* core: ``shared.datasets.load_path`` + ``shared.mlp.train`` with the same settings.

Memory: "peak RSS" is the child's high-water mark; "added by training" is the high-water mark
reached during training minus the RSS just before it (the peak is reset there through
/proc/self/clear_refs), i.e. what training costs on top of the loaded dataset (float32 for
the core, the seed's float64 copy for the seed).

Prints a markdown table; use ``--epochs 10`` for the accuracy comparison.
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "fashion-mnist"
DEFAULT_SEED_SCRIPT = REPO.parent / "shared" / "reference" / "seed_mlp.py"
LAYERS = [784, 128, 64, 10]
LEARNING_RATE = 0.01
BATCH_SIZE = 64
INFERENCE_IMAGES = 10_000
MB = 1024 * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _rss() -> int:
    return _status_kb("VmRSS") * 1024


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak() -> int:
    return _status_kb("VmHWM") * 1024


class _MemoryProbe:
    """RSS just before training, the high-water mark during it, and the process lifetime peak.

    Resetting VmHWM also resets ru_maxrss, so the peak reached before the reset is kept.
    """

    def start(self) -> None:
        self.peak_before = _peak()
        self.rss_before = _rss()
        self.reset = _reset_peak()

    def stop(self) -> None:
        self.peak_during = _peak()

    def report(self) -> dict[str, int | None]:
        return {
            "peak_rss": max(self.peak_before, _peak()),
            "rss_before_training": self.rss_before,
            "added_by_training": self.peak_during - self.rss_before if self.reset else None,
        }


def _images_per_second(predict: Any, x: Any, repeats: int = 5) -> float:
    predict(x)
    best = min(_timed(predict, x) for _ in range(repeats))
    return INFERENCE_IMAGES / best


def _timed(fn: Any, arg: Any) -> float:
    started = time.perf_counter()
    fn(arg)
    return time.perf_counter() - started


def _limit_threads(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def child_seed(args: argparse.Namespace) -> dict[str, Any]:
    """Run the seed's own main() with memory probes around its train()."""
    import numpy as np

    spec = importlib.util.spec_from_file_location("seed_mlp", args.seed_script)
    assert spec is not None and spec.loader is not None
    seed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(seed)
    memory = _MemoryProbe()
    models: list[Any] = []
    original_train = seed.train

    def train(model: Any, *rest: Any) -> None:
        models.append(model)
        memory.start()
        original_train(model, *rest)
        memory.stop()

    seed.train = train  # type: ignore[attr-defined]  # main() looks it up in the module
    sys.argv = [str(args.seed_script), str(args.data), "--epochs", str(args.epochs)]
    sys.argv += ["--seed", str(args.seed)]
    out = io.StringIO()
    with _limit_threads(args.threads), contextlib.redirect_stdout(out):
        seed.main()
    printed = dict(re.findall(r"^(Test Accuracy|Time Elapsed): ([0-9.]+)$", out.getvalue(), re.M))
    (x_train, _), (x_test, _) = seed.load(str(args.data))
    # Exactly INFERENCE_IMAGES images (the test set repeated if it is smaller), seed layout.
    x = np.resize(x_test.reshape(x_test.shape[0], -1), (INFERENCE_IMAGES, 784)).T / 255.0
    with _limit_threads(args.threads):
        images_per_s = _images_per_second(models[0].predict, x)
    return {
        "seconds_per_epoch": float(printed["Time Elapsed"]) / args.epochs,
        "test_accuracy": float(printed["Test Accuracy"]),
        "inference_images_per_s": images_per_s,
        "train_count": int(x_train.shape[0]),
        **memory.report(),
    }


def child_core(args: argparse.Namespace) -> dict[str, Any]:
    """Train the core on the same data and settings; report time, accuracy, memory."""
    import numpy as np

    from shared.datasets import load_path
    from shared.mlp import Architecture, Network, train

    data = load_path(args.data)
    rng = np.random.default_rng(args.seed)
    network = Network.initialize(Architecture.create(LAYERS), rng)
    memory = _MemoryProbe()
    with _limit_threads(args.threads):
        memory.start()
        started = time.perf_counter()
        history = train(
            network,
            data.x_train,
            data.y_train,
            epochs=args.epochs,
            learning_rate=LEARNING_RATE,
            batch_size=BATCH_SIZE,
            rng=rng,
        )
        elapsed = time.perf_counter() - started
        memory.stop()
        accuracy = network.accuracy(data.x_test, data.y_test)
        x = np.resize(data.x_test, (INFERENCE_IMAGES, data.x_test.shape[1]))
        images_per_s = _images_per_second(network.predict, x)
        proba_per_s = _images_per_second(network.predict_proba, x)
    return {
        "seconds_per_epoch": elapsed / args.epochs,
        "epoch_seconds": [round(s.seconds, 3) for s in history],
        "test_accuracy": accuracy,
        "train_accuracy": history[-1].train_accuracy,
        "inference_images_per_s": images_per_s,
        "proba_images_per_s": proba_per_s,
        "train_count": int(data.x_train.shape[0]),
        **memory.report(),
    }


def _run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.core", "--child", kind, "--epochs", str(args.epochs)]
    cmd += ["--data", str(args.data), "--seed", str(args.seed)]
    cmd += ["--seed-script", str(args.seed_script)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / MB:,.0f} MB"


def render(seed: dict[str, Any] | None, core: dict[str, Any], args: argparse.Namespace) -> str:
    n = core["train_count"]
    rows: list[tuple[str, str, str, str]] = []

    def row(label: str, key: str, fmt: Any, ratio: Any = None) -> None:
        s = fmt(seed[key]) if seed is not None and seed.get(key) is not None else "-"
        c = fmt(core[key]) if core.get(key) is not None else "-"
        r = ratio(seed[key], core[key]) if ratio and seed is not None else ""
        rows.append((label, s, c, r))

    row(
        "seconds / epoch (SGD + full train-set accuracy)",
        "seconds_per_epoch",
        lambda v: f"{v:.3f}",
        lambda s, c: f"**{s / c:.1f}x faster**",
    )
    rows.append(
        (
            "training samples / s",
            f"{n / seed['seconds_per_epoch']:,.0f}" if seed else "-",
            f"{n / core['seconds_per_epoch']:,.0f}",
            "",
        )
    )
    row(
        f"test accuracy after {args.epochs} epochs",
        "test_accuracy",
        lambda v: f"{v:.4f}",
        lambda s, c: f"{(c - s) * 100:+.2f} points",
    )
    row("peak RSS", "peak_rss", _mb)
    row("RSS before training (loaded data)", "rss_before_training", _mb)
    row("RSS added by training", "added_by_training", _mb)
    row(
        f"inference images / s ({INFERENCE_IMAGES:,} images, predict)",
        "inference_images_per_s",
        lambda v: f"{v:,.0f}",
        lambda s, c: f"{c / s:.1f}x",
    )
    lines = [
        f"Seed config {'-'.join(map(str, LAYERS))} relu/softmax/CE, lr {LEARNING_RATE}, "
        f"batch {BATCH_SIZE}, {args.epochs} epochs on {args.data} ({n:,} train images), "
        f"BLAS threads: {args.threads or 'library default'}, cpus: {os.cpu_count()}",
        "",
        "| measure | seed (float64 reference) | core (shared.mlp) | core vs seed |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines.append("")
    lines.append(
        "core EpochStats.seconds (SGD pass + its evaluation, which overlaps the next epoch): "
        f"{core['epoch_seconds']}"
    )
    lines.append(f"core predict_proba images/s: {core['proba_images_per_s']:,.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed-script", type=Path, default=DEFAULT_SEED_SCRIPT)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (default: all)")
    ap.add_argument("--skip-seed", action="store_true", help="only run the core")
    ap.add_argument("--json", action="store_true", help="also print the raw measurements")
    ap.add_argument("--child", choices=["seed", "core"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "seed":
        print(json.dumps(child_seed(args)))
        return
    if args.child == "core":
        print(json.dumps(child_core(args)))
        return
    load_before = os.getloadavg()[0]
    seed = None if args.skip_seed else _run_child("seed", args)
    core = _run_child("core", args)
    print(render(seed, core, args))
    # Other processes on the same cores distort both columns (multi-threaded BLAS worst).
    print(f"1-min load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
    if args.json:
        print(json.dumps({"seed": seed, "core": core}, indent=2))


if __name__ == "__main__":
    main()
