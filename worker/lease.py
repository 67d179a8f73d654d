"""A running job's lease: heartbeats, cancellation and fencing, checked between batches."""

import time
from typing import Any

from shared import jobs
from shared.config import Settings
from shared.db import session_scope


class LeaseLost(Exception):
    """Another attempt owns the job now (it was reaped); this one must write nothing more."""


class JobLease:
    """``should_stop()`` for the core: cheap on most calls, a heartbeat every few batches."""

    def __init__(self, job_id: str, attempt: int, settings: Settings) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.settings = settings
        self._next_beat = time.monotonic() + settings.heartbeat_seconds
        self.cancel_requested = False
        # Set freely by the job between heartbeats; written to the row by the next one.
        self.progress: dict[str, Any] | None = None

    def beat(self) -> None:
        with session_scope() as session:
            state = jobs.heartbeat(
                session,
                self.job_id,
                self.attempt,
                lease_seconds=self.settings.lease_seconds,
                progress=self.progress,
            )
            session.commit()
        if not state.owned:
            raise LeaseLost(f"job {self.job_id} attempt {self.attempt} lost its lease")
        self.cancel_requested = state.cancel_requested

    def should_stop(self) -> bool:
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + self.settings.heartbeat_seconds
            self.beat()
        return self.cancel_requested
