"""The queue carries only job ids, each on its own type's Redis list, as JSON."""

import json

import pytest
import redis

from shared.queue import EnqueueError, enqueue


def test_each_job_type_lands_on_its_own_queue(settings_env: dict[str, str]) -> None:
    """A predict job goes to the predict list only and a train job to the train list only."""
    client = redis.Redis.from_url(settings_env["REDIS_URL"])
    enqueue("predict", "job-p")
    assert (client.llen("predict"), client.llen("train")) == (1, 0)
    enqueue("train", "job-t")
    assert (client.llen("predict"), client.llen("train")) == (1, 1)
    message = json.loads(client.lindex("train", 0))  # type: ignore[arg-type]
    assert message["content-type"] == "application/json"
    assert message["headers"]["task"] == "mnistq.train"
    assert message["headers"]["argsrepr"] == "['job-t']"


def test_unreachable_broker_raises_enqueue_error(
    settings_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead broker gives EnqueueError quickly, with the URL's password redacted."""
    from tests.conftest import configure

    configure(monkeypatch, REDIS_URL="redis://user:secret@127.0.0.1:1/0")
    with pytest.raises(EnqueueError) as info:
        enqueue("train", "x")
    assert "secret" not in str(info.value) and "127.0.0.1:1" in str(info.value)
