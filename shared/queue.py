"""The Celery app object (broker settings) and the one way jobs are put on the queue.

The API imports this module to send tasks by name; only ``worker/`` registers the tasks.
Redis carries nothing but job ids: the database is the source of truth.
"""

from functools import lru_cache

import redis
from celery import Celery
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError

from shared.config import Settings, get_settings
from shared.models import JobType

TASK_NAMES = {JobType.train: "mnistq.train", JobType.predict: "mnistq.predict"}
QUEUES = {JobType.train: "train", JobType.predict: "predict"}


def make_celery(settings: Settings) -> Celery:
    app = Celery("mnistq", broker=settings.redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit,
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES.values()],
        task_default_queue=QUEUES[JobType.train],
        task_routes={TASK_NAMES[t]: {"queue": QUEUES[t]} for t in JobType},
        broker_connection_retry_on_startup=True,
        broker_transport_options={"socket_connect_timeout": settings.enqueue_timeout},
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app


@lru_cache
def get_celery() -> Celery:
    return make_celery(get_settings())


class EnqueueError(RuntimeError):
    """The broker could not take the message (Redis down or unreachable)."""


def enqueue(job_type: JobType | str, job_id: str) -> None:
    """Send "job ``job_id`` is ready" to its queue; call only after the row is committed."""
    job_type = JobType(job_type)
    settings = get_settings()
    try:
        get_celery().send_task(
            TASK_NAMES[job_type],
            args=[job_id],
            queue=QUEUES[job_type],
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        )
    except (OperationalError, OSError) as exc:
        raise EnqueueError(f"the queue at {_redacted(settings.redis_url)} is unreachable") from exc


def broker_queue_depths(url: str, timeout: float = 1.0) -> dict[str, int] | None:
    """Messages waiting per queue, or None when the broker does not answer."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            return {q: int(client.llen(q)) for q in QUEUES.values()}
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return None


def broker_answers(url: str, timeout: float = 1.0) -> bool:
    return broker_queue_depths(url, timeout) is not None


def _redacted(url: str) -> str:
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
