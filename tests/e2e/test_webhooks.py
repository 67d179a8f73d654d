"""Webhooks: a worker POSTs a signed event to the job's callback_url when it finishes it."""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.devstack import LocalStack
from tests.e2e.conftest import STACK_ENV


class Receiver:
    """A local HTTP endpoint that records POSTs and answers with ``status``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def wait_for_webhook(stack: LocalStack, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The job's recorded delivery outcome, once the worker has stored it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        webhook = stack.client.get(f"/v1/jobs/{job_id}").json()["webhook"]
        if webhook:
            return webhook  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no webhook outcome for job {job_id}: {stack.logs()}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_finished_job_calls_back_with_a_signature(stack: LocalStack, receiver: Receiver) -> None:
    """A succeeded train job POSTs job.finished with its result, signed with the secret."""
    body = {"dataset": "mnist-sample", "epochs": 1, "callback_url": receiver.url}
    job = stack.client.post("/v1/jobs/train", json=body).json()
    assert job["callback_url"] == receiver.url and "callback_url" not in job["params"]
    job = stack.wait_for_job(job["id"])
    assert job["status"] == "succeeded"
    webhook = wait_for_webhook(stack, job["id"])
    assert webhook["status"] == "delivered" and webhook["attempts"] == 1
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    event = json.loads(call["body"])
    assert event["event"] == "job.finished" and event["job"]["id"] == job["id"]
    assert event["job"]["status"] == "succeeded"
    assert event["job"]["result"]["test_accuracy"] == job["result"]["test_accuracy"]
    secret = STACK_ENV["MNISTQ_WEBHOOK_SECRET"].encode()
    expected = "sha256=" + hmac.new(secret, call["body"], hashlib.sha256).hexdigest()
    assert call["headers"]["X-Mnistq-Signature"] == expected


def test_failing_receiver_is_retried_then_recorded(stack: LocalStack, receiver: Receiver) -> None:
    """A receiver answering 500 gets every attempt; the job records the failed delivery."""
    receiver.status = 500
    body = {"dataset": "mnist", "epochs": 1, "callback_url": receiver.url}  # fails: offline
    job = stack.client.post("/v1/jobs/train", json=body).json()
    assert stack.wait_for_job(job["id"])["status"] == "failed"
    webhook = wait_for_webhook(stack, job["id"])
    assert webhook == {
        "status": "failed",
        "attempts": 3,
        "last_error": "HTTP 500",
        "at": webhook["at"],
    }
    assert len(receiver.calls) == 3
    assert json.loads(receiver.calls[0]["body"])["job"]["error"]["code"] == "dataset_unavailable"
