"""The ``mnistq`` console script: run the service's parts, manage keys, and talk to the API.

Service commands: ``migrate``, ``serve``, ``worker``, ``reap``, ``keys``, ``demo``.
Client commands (find the service through ``MNISTQ_URL`` and ``MNISTQ_API_KEY``):
``train``, ``predict``, ``jobs``, ``job``, ``watch``, ``cancel``, ``retry``, ``weights``.
"""

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx

from shared.models import FINISHED_STATUSES


# -- service commands ----------------------------------------------------------------------
def cmd_migrate(args: argparse.Namespace) -> int:
    from migrations.runner import upgrade

    upgrade(revision=args.revision)
    print(f"database migrated to {args.revision}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    os.environ["MNISTQ_WORKER_CONCURRENCY"] = str(args.concurrency)
    from worker.celery_app import app

    argv = [
        "worker",
        "--queues",
        args.queues,
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        args.log_level,
        "--pool",
        "prefork",
        "--without-gossip",
        "--without-mingle",
    ]
    if args.name:
        argv += ["--hostname", args.name]
    app.worker_main(argv)
    return 0


def cmd_reap(_: argparse.Namespace) -> int:
    from worker.reaper import reap_once

    ids = reap_once()
    print(f"re-enqueued {len(ids)} job(s)" + (": " + ", ".join(ids) if ids else ""))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from sqlalchemy import select, update

    from shared.db import session_scope
    from shared.keys import create_key
    from shared.models import ApiKey, utcnow

    with session_scope() as session:
        if args.keys_command == "create":
            row, plain = create_key(session, args.name, is_admin=args.admin)
            session.commit()
            print(json.dumps({"id": row.id, "name": row.name, "admin": row.is_admin, "key": plain}))
            print("Store the key now: only its hash is kept.", file=sys.stderr)
        elif args.keys_command == "revoke":
            res = session.execute(
                update(ApiKey).where(ApiKey.id == args.id).values(revoked_at=utcnow())
            )
            session.commit()
            if not res.rowcount:  # type: ignore[attr-defined]
                print(f"no key with id {args.id}", file=sys.stderr)
                return 1
        else:
            for key in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
                state = "revoked" if key.revoked_at else "active"
                print(f"{key.id}  {key.name}  admin={key.is_admin}  {state}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from shared.demo import run_demo

    return run_demo(epochs=args.epochs, dataset=args.dataset)


# -- client commands -----------------------------------------------------------------------
def _client() -> httpx.Client:
    key = os.environ.get("MNISTQ_API_KEY") or os.environ.get("MNISTQ_ADMIN_KEY")
    if not key:
        raise SystemExit("set MNISTQ_API_KEY (create one with `mnistq keys create --name me`)")
    return httpx.Client(
        base_url=os.environ.get("MNISTQ_URL", "http://127.0.0.1:8000"),
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            err = response.json()["error"]
            raise SystemExit(f"error {response.status_code} {err['code']}: {err['message']}")
        except (ValueError, KeyError):
            raise SystemExit(f"error {response.status_code}: {response.text[:200]}") from None
    return response.json()


def watch(client: httpx.Client, job_id: str, out: Any = sys.stdout) -> dict[str, Any]:
    """Print each epoch as it finishes, then return the final job."""
    shown = 0
    while True:
        job = _check(client.get(f"/v1/jobs/{job_id}"))
        if job["type"] == "train":
            for row in _check(client.get(f"/v1/jobs/{job_id}/epochs"))["items"][shown:]:
                val = row["val_accuracy"]
                print(
                    f"epoch {row['epoch']:>3}/{job['params']['epochs']}  loss {row['loss']:.4f}  "
                    f"train acc {row['train_accuracy']:.4f}  "
                    f"test acc {'-' if val is None else f'{val:.4f}'}  {row['seconds']:.2f} s",
                    file=out,
                    flush=True,
                )
                shown = row["epoch"]
        if job["status"] in FINISHED_STATUSES:
            return job
        time.sleep(0.2)


def cmd_train(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        k: v
        for k, v in {
            "dataset": args.dataset,
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "loss": args.loss,
            "hidden_activation": args.hidden_activation,
            "output_activation": args.output_activation,
            "layers": [int(n) for n in args.layers.split(",")] if args.layers else None,
        }.items()
        if v is not None
    }
    with _client() as client:
        job = _check(client.post("/v1/jobs/train", json=body))
        print(f"queued train job {job['id']}", file=sys.stderr)
        if args.wait:
            job = watch(client, job["id"])
        print(json.dumps(job, indent=2))
    return 0 if job["status"] != "failed" else 1


def cmd_predict(args: argparse.Namespace) -> int:
    with _client() as client:
        if args.file:
            with open(args.file, "rb") as fh:
                response = client.post(
                    "/v1/jobs/predict",
                    data={"model": args.model},
                    files={"file": (os.path.basename(args.file), fh)},
                )
        else:
            response = client.post(
                "/v1/jobs/predict", json={"model": args.model, "dataset": args.dataset}
            )
        job = _check(response)
        if args.wait:
            job = watch(client, job["id"])
        print(json.dumps(job, indent=2))
    return 0 if job["status"] != "failed" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    params = {k: v for k, v in vars(args).items() if k in ("type", "status", "limit") and v}
    with _client() as client:
        for job in _check(client.get("/v1/jobs", params=params))["items"]:
            result = job["result"] or {}
            acc = result.get("test_accuracy", result.get("accuracy"))
            print(
                f"{job['id']}  {job['type']:<7}  {job['status']:<9}  {job['dataset']:<16}  "
                f"{job['created_at'][:19]}  acc={'-' if acc is None else f'{acc:.4f}'}"
            )
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    with _client() as client:
        print(json.dumps(_check(client.get(f"/v1/jobs/{args.id}")), indent=2))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    with _client() as client:
        job = watch(client, args.id)
        print(json.dumps(job["result"] or job["error"], indent=2))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client() as client:
        print(json.dumps(_check(client.post(f"/v1/jobs/{args.id}/cancel")), indent=2))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    with _client() as client:
        job = _check(client.post(f"/v1/jobs/{args.id}/retry"))
        if args.wait:
            job = watch(client, job["id"])
        print(json.dumps(job, indent=2))
    return 0 if job["status"] != "failed" else 1


def cmd_weights(args: argparse.Namespace) -> int:
    with _client() as client:
        response = client.get(f"/v1/jobs/{args.id}/weights")
        if response.status_code != 200:
            _check(response)
        with open(args.output, "wb") as fh:
            fh.write(response.content)
        print(
            f"wrote {args.output} ({len(response.content):,} bytes, sha256 "
            f"{response.headers['X-Checksum-SHA256']})"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mnistq", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("migrate", help="apply database migrations")
    s.add_argument("--revision", default="head")
    s.set_defaults(func=cmd_migrate)

    s = sub.add_parser("serve", help="run the HTTP API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("worker", help="run a Celery worker")
    s.add_argument("--queues", default="train,predict")
    s.add_argument("--concurrency", type=int, default=1)
    s.add_argument("--name", default=None, help="Celery hostname, e.g. w1@%%h")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=cmd_worker)

    s = sub.add_parser("reap", help="requeue jobs of lost workers and lost messages, once")
    s.set_defaults(func=cmd_reap)

    s = sub.add_parser("keys", help="manage API keys")
    ks = s.add_subparsers(dest="keys_command", required=True)
    k = ks.add_parser("create")
    k.add_argument("--name", required=True)
    k.add_argument("--admin", action="store_true")
    k = ks.add_parser("revoke")
    k.add_argument("id")
    ks.add_parser("list")
    s.set_defaults(func=cmd_keys)

    s = sub.add_parser("demo", help="start everything locally, train, predict, stop")
    s.add_argument("--epochs", type=int, default=5)
    s.add_argument("--dataset", default=None, help="default: the best dataset available offline")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("train", help="submit a training job")
    s.add_argument("--dataset")
    s.add_argument("--layers", help="comma separated, e.g. 784,128,64,10")
    s.add_argument("--hidden-activation")
    s.add_argument("--output-activation")
    s.add_argument("--loss")
    s.add_argument("--epochs", type=int)
    s.add_argument("--learning-rate", type=float)
    s.add_argument("--batch-size", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--wait", action="store_true", help="show epochs until the job ends")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("predict", help="submit a prediction job")
    s.add_argument("--model", required=True)
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--dataset", help="a named split, e.g. mnist-sample:test")
    g.add_argument("--file", help=".npy, .npz, IDX .gz or .zip of PNGs")
    s.add_argument("--wait", action="store_true")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("jobs", help="list jobs, newest first")
    s.add_argument("--type", choices=["train", "predict"])
    s.add_argument("--status")
    s.add_argument("--limit", type=int, default=20)
    s.set_defaults(func=cmd_jobs)

    for name, func, helptext in (
        ("job", cmd_job, "show one job"),
        ("watch", cmd_watch, "follow a job's epochs until it ends"),
        ("cancel", cmd_cancel, "cancel a job"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("id")
        s.set_defaults(func=func)

    s = sub.add_parser("retry", help="queue a failed or cancelled job again (resumes training)")
    s.add_argument("id")
    s.add_argument("--wait", action="store_true")
    s.set_defaults(func=cmd_retry)

    s = sub.add_parser("weights", help="download a train job's weights (.npz)")
    s.add_argument("id")
    s.add_argument("-o", "--output", default="weights.npz")
    s.set_defaults(func=cmd_weights)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
