"""The /dashboard page in a real headless Chromium against the real API and worker."""

import shutil
import subprocess
from pathlib import Path

from shared.devstack import LocalStack

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
]


def render(url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran (fetches included), as Chromium serialises it."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Chromium is missing: `make test` installs it (Debian package chromium)"
    r = subprocess.run(
        [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_dashboard_lists_jobs_and_shows_epochs_and_errors(
    stack: LocalStack, tmp_path: Path
) -> None:
    """With a key the page lists the caller's jobs with status, shows a train job's epochs,
    chart and result, and a failed job's error code and message."""
    ok = stack.client.post("/v1/jobs/train", json={"dataset": "mnist-sample", "epochs": 2}).json()
    bad = stack.client.post("/v1/jobs/train", json={"dataset": "mnist", "epochs": 1}).json()
    assert stack.wait_for_job(ok["id"])["status"] == "succeeded"
    assert stack.wait_for_job(bad["id"])["status"] == "failed"

    dom = render(f"{stack.url}/dashboard#key={stack.admin_key}&job={ok['id']}", tmp_path / "a")
    assert f'data-id="{ok["id"]}"' in dom and f'data-id="{bad["id"]}"' in dom
    assert 'id="detail-status">succeeded<' in dom
    assert dom.count('<tr class="epoch">') == 2
    assert 'id="chart"' in dom and "test_accuracy" in dom
    assert 'id="weights"' in dom

    dom = render(f"{stack.url}/dashboard#key={stack.admin_key}&job={bad['id']}", tmp_path / "b")
    assert 'id="detail-status">failed<' in dom
    assert "dataset_unavailable: " in dom and "mnist.npz" in dom
    assert 'id="retry"' in dom and 'id="weights"' not in dom


def test_dashboard_without_a_key_asks_for_one(stack: LocalStack, tmp_path: Path) -> None:
    """Without a key the page shows only the key form and no jobs; a wrong key is refused."""
    dom = render(f"{stack.url}/dashboard", tmp_path / "c")
    assert '<form id="login">' in dom and "data-id=" not in dom
    dom = render(f"{stack.url}/dashboard#key=wrong", tmp_path / "d")
    assert "That API key was refused." in dom and "data-id=" not in dom


def test_api_docs_render_offline(stack: LocalStack, tmp_path: Path) -> None:
    """/docs is Swagger UI served by the API itself: it renders the operations with no CDN."""
    dom = render(f"{stack.url}/docs", tmp_path / "e")
    assert "/docs-assets/swagger-ui-bundle.js" in dom
    assert "opblock" in dom and "/v1/jobs/train" in dom and "/v1/jobs/{job_id}/retry" in dom
