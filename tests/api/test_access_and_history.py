"""Auth, tenancy, job history filters, pagination, cancel and the service endpoints."""

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.conftest import clear_caches

TRAIN = {"dataset": "mnist-sample", "epochs": 1}


def test_missing_or_unknown_key_is_401(client: TestClient) -> None:
    """/v1 needs a known bearer key; the body says how to send one."""
    no_key = client.get("/v1/jobs", headers={"Authorization": ""})
    bad_key = client.get("/v1/jobs", headers={"Authorization": "Bearer nope"})
    assert no_key.status_code == 401 and bad_key.status_code == 401
    assert "Bearer" in no_key.json()["error"]["message"]
    assert no_key.headers["WWW-Authenticate"] == "Bearer"


def test_a_key_sees_only_its_own_jobs(
    client: TestClient, make_key: Callable[..., dict[str, str]]
) -> None:
    """Another key's job is 404 to read, cancel or download; the admin key sees all."""
    alice, bob = make_key("alice"), make_key("bob")
    job = client.post("/v1/jobs/train", json=TRAIN, headers=alice).json()
    assert client.get(f"/v1/jobs/{job['id']}", headers=alice).status_code == 200
    for method, path in (
        ("get", f"/v1/jobs/{job['id']}"),
        ("get", f"/v1/jobs/{job['id']}/epochs"),
        ("get", f"/v1/jobs/{job['id']}/weights"),
        ("post", f"/v1/jobs/{job['id']}/cancel"),
    ):
        assert getattr(client, method)(path, headers=bob).status_code == 404
    assert client.get("/v1/jobs", headers=bob).json()["items"] == []
    assert [j["id"] for j in client.get("/v1/jobs").json()["items"]] == [job["id"]]


def test_revoked_key_is_refused(
    client: TestClient, make_key: Callable[..., dict[str, str]]
) -> None:
    """A revoked key is as good as unknown."""
    from sqlalchemy import update

    from shared.db import session_scope
    from shared.keys import hash_key
    from shared.models import ApiKey, utcnow

    headers = make_key("temp")
    assert client.get("/v1/jobs", headers=headers).status_code == 200
    with session_scope() as s:
        plain = headers["Authorization"].split()[1]
        s.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(plain)).values(revoked_at=utcnow())
        )
        s.commit()
    assert client.get("/v1/jobs", headers=headers).status_code == 401


def test_unknown_job_is_404(client: TestClient) -> None:
    """An id that does not exist gets a 404 error body."""
    r = client.get("/v1/jobs/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_history_filters_and_cursor_pagination(client: TestClient) -> None:
    """Listing is newest first, filters by status/type/dataset and pages without overlap."""
    ids = [client.post("/v1/jobs/train", json=TRAIN).json()["id"] for _ in range(5)]
    client.post("/v1/jobs/train", json={"dataset": "fashion_mnist", "epochs": 1})
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, "dataset": "mnist-sample"} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", params=params).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    assert client.get("/v1/jobs", params={"type": "predict"}).json()["items"] == []
    created = client.get(f"/v1/jobs/{ids[2]}").json()["created_at"]
    newer = client.get("/v1/jobs", params={"created_after": created, "dataset": "mnist-sample"})
    assert [j["id"] for j in newer.json()["items"]] == [ids[4], ids[3]]
    assert client.get("/v1/jobs", params={"limit": 501}).status_code == 422
    assert client.get("/v1/jobs", params={"cursor": "garbage!"}).status_code == 422
    assert client.get("/v1/jobs", params={"status": "exploded"}).status_code == 422


def test_cancel_a_queued_job_and_not_twice(client: TestClient) -> None:
    """Cancelling a queued job ends it at once; cancelling it again is a 409."""
    job = client.post("/v1/jobs/train", json=TRAIN).json()
    r = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    assert r.json()["finished_at"] is not None
    again = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"


def test_weights_before_success_is_409(client: TestClient) -> None:
    """Weights are only downloadable from a succeeded job."""
    job = client.post("/v1/jobs/train", json=TRAIN).json()
    r = client.get(f"/v1/jobs/{job['id']}/weights")
    assert r.status_code == 409 and "queued" in r.json()["error"]["message"]


def test_health_ready_metrics_and_docs(client: TestClient) -> None:
    """healthz, readyz, metrics and the generated OpenAPI are served without a key."""
    anon = {"Authorization": ""}
    assert client.get("/healthz", headers=anon).json() == {"status": "ok"}
    ready = client.get("/readyz", headers=anon)
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    client.post("/v1/jobs/train", json=TRAIN)
    text = client.get("/metrics", headers=anon).text
    assert 'mnistq_jobs{type="train",status="queued"} 1' in text
    assert 'mnistq_queue_depth{queue="train"} 1' in text
    docs = client.get("/docs", headers=anon)
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    asset = client.get("/docs-assets/swagger-ui-bundle.js", headers=anon)
    assert asset.status_code == 200 and len(asset.content) > 100_000
    spec = client.get("/openapi.json", headers=anon).json()
    assert "/v1/jobs/train" in spec["paths"] and "/v1/jobs/predict" in spec["paths"]


def test_readyz_reports_a_dead_database_and_broker(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database and the broker unreachable readyz answers 503 and says which."""
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    clear_caches()
    r = client.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"].startswith("unreachable") and checks["broker"] == "unreachable"


def test_api_process_never_imports_training_code() -> None:
    """Importing and building the app pulls in neither Keras, JAX, the MLP core nor worker/."""
    import subprocess
    import sys

    code = (
        "import sys; from api.app import create_app; create_app();"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('keras','jax','worker')"
        " or m.startswith('shared.mlp') or m == 'shared.datasets'];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_retry_requeues_a_cancelled_job_but_not_a_queued_one(
    client: TestClient, queued_messages: Callable[[], int]
) -> None:
    """Retry is 409 for a queued job; a cancelled one goes back to queued with a message."""
    job = client.post("/v1/jobs/train", json=TRAIN).json()
    r = client.post(f"/v1/jobs/{job['id']}/retry")
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_retryable"
    client.post(f"/v1/jobs/{job['id']}/cancel")
    r = client.post(f"/v1/jobs/{job['id']}/retry")
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["status"], body["retries"], body["finished_at"], body["error"]) == (
        "queued",
        1,
        None,
        None,
    )
    assert queued_messages() == 2  # the original message and the retry's
