"""docker-compose.yml and the Dockerfile, checked as far as a machine without Docker allows.

There is no Docker engine here, so images are never built; instead these tests pin that
every service runs a real ``mnistq`` command line that this CLI accepts, with settings the
service reads, and that the Dockerfile copies what exists. The same commands run without
Docker in tests/e2e (``shared.devstack``).
"""

import re
from pathlib import Path

import yaml

from shared.cli import build_parser
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_run_real_cli_commands() -> None:
    """Every app service's command parses with mnistq's own argument parser."""
    services = _compose()["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    parser = build_parser()
    for name in ("migrate", "api", "worker"):
        command = services[name]["command"]
        assert command[0] == "mnistq", name
        args = parser.parse_args(command[1:])
        assert args.command == {"migrate": "migrate", "api": "serve", "worker": "worker"}[name]


def test_compose_environment_is_what_settings_read() -> None:
    """The app services set DATABASE_URL, REDIS_URL, MNISTQ_ADMIN_KEY in production mode."""
    services = _compose()["services"]
    env = services["worker"]["environment"]
    for key in ("DATABASE_URL", "REDIS_URL", "MNISTQ_ADMIN_KEY", "MNISTQ_ENV"):
        assert key in env
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["MNISTQ_ENV"] == "production"
    known = {f"MNISTQ_{n.upper()}" for n in Settings.model_fields} | {
        "DATABASE_URL",
        "REDIS_URL",
        "KERAS_HOME",
    }
    assert set(env) <= known, set(env) - known


def test_dockerfile_copies_existing_paths_and_installs_the_worker_extra() -> None:
    """COPY sources exist in the repo and the image installs the package with Keras."""
    text = (ROOT / "Dockerfile").read_text()
    for src in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", text, flags=re.M):
        for path in src.split():
            assert (ROOT / path).exists(), path
    assert "pip install '.[worker]'" in text
    assert re.search(r"^USER (?!root)", text, flags=re.M)
