"""POST /v1/jobs/train: valid jobs are recorded then queued; bad input leaves nothing behind."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("unknown field", {"epochs": 1, "momentum": 0.9}, "momentum"),
    ("unknown hidden activation", {"hidden_activation": "gelu"}, "hidden_activation"),
    ("unknown output activation", {"output_activation": "relu"}, "output_activation"),
    ("unknown loss", {"loss": "hinge"}, "loss"),
    ("layers not starting at 784", {"layers": [100, 10]}, "start at 784"),
    ("layers not ending at 10", {"layers": [784, 64, 9]}, "end at 10"),
    ("fewer than 2 layers", {"layers": [784]}, "at least 2"),
    ("zero layer size", {"layers": [784, 0, 10]}, "positive"),
    ("negative layer size", {"layers": [784, -5, 10]}, "positive"),
    ("absurd layer size", {"layers": [784, 100000, 10]}, "at most 4096"),
    ("too many parameters", {"layers": [784] + [4096] * 4 + [10]}, "parameters"),
    ("float layer size", {"layers": [784, 12.5, 10]}, "layers"),
    ("zero epochs", {"epochs": 0}, "epochs"),
    ("negative epochs", {"epochs": -3}, "epochs"),
    ("absurd epochs", {"epochs": 10**9}, "epochs"),
    ("fractional epochs", {"epochs": 1.5}, "epochs"),
    ("string epochs", {"epochs": "10"}, "epochs"),
    ("boolean batch size", {"batch_size": True}, "batch_size"),
    ("zero batch size", {"batch_size": 0}, "batch_size"),
    (
        "batch larger than the training set",
        {"dataset": "mnist-sample", "batch_size": 4001},
        "4,000",
    ),
    ("zero learning rate", {"learning_rate": 0}, "learning_rate"),
    ("negative learning rate", {"learning_rate": -0.1}, "learning_rate"),
    ("learning rate above 10", {"learning_rate": 10.5}, "learning_rate"),
    ("linear output with cross-entropy", {"output_activation": "linear"}, "linear"),
    ("unknown dataset", {"dataset": "cifar10"}, "dataset"),
    ("malformed upload id", {"dataset": "upload:../../etc"}, "dataset"),
    ("negative seed", {"seed": -1}, "seed"),
    ("body not an object", [1, 2, 3], "body"),
    ("callback not http", {"callback_url": "ftp://example.com/hook"}, "callback_url"),
    ("callback relative", {"callback_url": "/hook"}, "callback_url"),
]


@pytest.mark.parametrize(("case", "body", "fragment"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_train_body_is_refused_and_leaves_nothing(
    client: TestClient,
    job_count: Callable[[], int],
    queued_messages: Callable[[], int],
    case: str,
    body: Any,
    fragment: str,
) -> None:
    """Each invalid body gets a 422 with a one-sentence message; no row, no message."""
    r = client.post("/v1/jobs/train", json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    assert fragment.lower() in (err["message"] + json.dumps(err["details"])).lower()
    assert "Traceback" not in r.text
    assert job_count() == 0
    assert queued_messages() == 0


@pytest.mark.parametrize(
    "raw",
    [b'{"learning_rate": NaN}', b'{"learning_rate": Infinity}', b"{not json", b'{"epochs": 1e999}'],
)
def test_non_finite_or_broken_json_is_refused(
    client: TestClient, job_count: Callable[[], int], queued_messages: Callable[[], int], raw: bytes
) -> None:
    """NaN, infinity and malformed JSON get a 422, never a 500 or a row."""
    r = client.post("/v1/jobs/train", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"]
    assert job_count() == 0 and queued_messages() == 0


def test_oversized_body_gets_413(
    client: TestClient, job_count: Callable[[], int], queued_messages: Callable[[], int]
) -> None:
    """A JSON body over the limit is refused with 413 before it is parsed."""
    raw = b'{"layers": [' + b"784," * 400_000 + b"10]}"
    r = client.post("/v1/jobs/train", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert job_count() == 0 and queued_messages() == 0


def test_valid_job_is_recorded_then_queued(
    client: TestClient, job_count: Callable[[], int], queued_messages: Callable[[], int]
) -> None:
    """A valid body returns 202 with the job, one row and one message on the train queue."""
    r = client.post(
        "/v1/jobs/train", json={"dataset": "mnist-sample", "epochs": 2, "hidden_activation": "reLU"}
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["type"] == "train" and job["attempt"] == 0
    assert job["params"]["hidden_activation"] == "relu"
    assert job["params"]["layers"] == [784, 128, 64, 10]
    assert isinstance(job["params"]["seed"], int)  # recorded even when not given
    assert job["created_at"].endswith(("+00:00", "Z"))
    assert job_count() == 1 and queued_messages() == 1
    assert client.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]


def test_empty_body_uses_the_seed_defaults(client: TestClient) -> None:
    """No body at all is a valid request for the seed's configuration on mnist."""
    r = client.post("/v1/jobs/train")
    assert r.status_code == 202, r.text
    p = r.json()["params"]
    assert (p["dataset"], p["epochs"], p["learning_rate"], p["batch_size"]) == (
        "mnist",
        10,
        0.01,
        64,
    )


def test_full_batch_and_limits_are_accepted(client: TestClient) -> None:
    """One full-batch step per epoch, 1,000 epochs and 4,096-unit layers are all valid."""
    body = {
        "dataset": "mnist-sample",
        "batch_size": 4000,
        "epochs": 1000,
        "layers": [784, 4096, 10],
    }
    assert client.post("/v1/jobs/train", json=body).status_code == 202


def test_idempotency_key_replays_and_conflicts(
    client: TestClient, job_count: Callable[[], int], queued_messages: Callable[[], int]
) -> None:
    """Same key + same body: 200 and the same job; same key + other body: 409."""
    body = {"dataset": "mnist-sample", "epochs": 1}
    first = client.post("/v1/jobs/train", json=body, headers={"Idempotency-Key": "abc"})
    again = client.post("/v1/jobs/train", json=body, headers={"Idempotency-Key": "abc"})
    other = client.post(
        "/v1/jobs/train", json={**body, "epochs": 2}, headers={"Idempotency-Key": "abc"}
    )
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_conflict"
    assert job_count() == 1 and queued_messages() == 1


def test_redis_down_gives_503_and_no_orphan_row(
    client: TestClient, job_count: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the broker unreachable the submission answers 503 and deletes its row."""
    from tests.conftest import clear_caches

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    clear_caches()
    r = client.post("/v1/jobs/train", json={"dataset": "mnist-sample", "epochs": 1})
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "queue_unavailable"
    assert job_count() == 0
