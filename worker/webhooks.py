"""Tell a job's ``callback_url`` that a worker finished it.

The body is small on purpose (the receiver GETs the job for everything else)::

    {"event": "job.finished", "job": {"id", "type", "status", "result", "error",
     "finished_at"}}

With ``MNISTQ_WEBHOOK_SECRET`` set, ``X-Mnistq-Signature: sha256=<hex HMAC-SHA256 of the
body>`` lets the receiver check it came from here. Delivery is tried up to
``MNISTQ_WEBHOOK_ATTEMPTS`` times (any 2xx counts); the outcome is stored on the job.
"""

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx
from sqlalchemy import update

from shared.config import Settings
from shared.db import session_scope
from shared.models import FINISHED_STATUSES, Job, as_utc, utcnow

log = logging.getLogger(__name__)
BACKOFF_SECONDS = (0.5, 2.0, 5.0)


def payload(job: Job) -> dict[str, Any]:
    finished = as_utc(job.finished_at)
    return {
        "event": "job.finished",
        "job": {
            "id": job.id,
            "type": job.type,
            "status": job.status,
            "result": job.result,
            "error": {"code": job.error_code, "message": job.error_message}
            if job.error_code
            else None,
            "finished_at": finished.isoformat() if finished else None,
        },
    }


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(job_id: str, settings: Settings) -> None:
    """POST the finished job to its callback URL, if it has one; never raises."""
    try:
        _deliver(job_id, settings)
    except Exception:  # a webhook problem must not fail a finished job or the worker
        log.exception("webhook for job %s could not be delivered", job_id)


def _deliver(job_id: str, settings: Settings) -> None:
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or not job.callback_url or job.status not in FINISHED_STATUSES:
            return
        url, body = job.callback_url, json.dumps(payload(job)).encode()
    headers = {"Content-Type": "application/json", "X-Mnistq-Event": "job.finished"}
    if settings.webhook_secret is not None:
        headers["X-Mnistq-Signature"] = sign(body, settings.webhook_secret.get_secret_value())
    outcome: dict[str, Any] = {"status": "failed", "attempts": 0, "last_error": None}
    for attempt in range(1, settings.webhook_attempts + 1):
        outcome["attempts"] = attempt
        try:
            response = httpx.post(
                url, content=body, headers=headers, timeout=settings.webhook_timeout
            )
            if response.is_success:
                outcome |= {"status": "delivered", "last_error": None}
                break
            outcome["last_error"] = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            outcome["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
        if attempt < settings.webhook_attempts:
            time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
    outcome["at"] = utcnow().isoformat()
    log.info("webhook for job %s: %s", job_id, outcome)
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(webhook=outcome))
        session.commit()
