"""Pub/Sub against the Google Cloud Pub/Sub emulator (Debian `google-cloud-cli-pubsub-emulator`).

The emulator implements dead-letter policies and delivery attempts, so the consumer's attempt
counting and dead-lettering run against the real server logic.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inferstack.runtime.models import load_model
from inferstack.runtime.queues import QueueConfigError, open_queue
from inferstack.runtime.queues.pubsub import MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE
from inferstack.runtime.results import open_result_store
from inferstack.runtime.worker.loop import Worker
from inferstack.runtime.worker.settings import WorkerSettings
from tests.integration.conftest import PubSubEmulator, unique
from tests.v2_client import encode_request

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from google.cloud import pubsub_v1

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Topology:
    topic: str
    subscription: str
    dead_subscription: str
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient

    @property
    def uri(self) -> str:
        return f"pubsub://{self.subscription}"

    def publish(self, data: bytes, **attributes: str) -> str:
        return str(self.publisher.publish(self.topic, data, **attributes).result())

    def pull_dead(self) -> list[Any]:
        reply = self.subscriber.pull(
            request={"subscription": self.dead_subscription, "max_messages": 100},
            timeout=5,
            retry=None,
        )
        return list(reply.received_messages)


@pytest.fixture
def pubsub(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Topology]:
    """A topic, a subscription with a dead-letter policy (5 attempts), and the DLQ's own."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host)
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    project = pubsub_emulator.project
    name = unique("work")
    topic = publisher.create_topic(request={"name": f"projects/{project}/topics/{name}"}).name
    dead = publisher.create_topic(request={"name": f"projects/{project}/topics/{name}-dead"}).name
    subscription = subscriber.create_subscription(
        request={
            "name": f"projects/{project}/subscriptions/{name}",
            "topic": topic,
            "ack_deadline_seconds": 10,
            "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 5},
        }
    ).name
    dead_subscription = subscriber.create_subscription(
        request={"name": f"projects/{project}/subscriptions/{name}-dead", "topic": dead}
    ).name
    yield Topology(topic, subscription, dead_subscription, publisher, subscriber)
    subscriber.close()


def test_subscription_without_dead_letter_policy_is_refused(
    pubsub: Topology, pubsub_emulator: PubSubEmulator
) -> None:
    name = f"projects/{pubsub_emulator.project}/subscriptions/{unique('plain')}"
    pubsub.subscriber.create_subscription(request={"name": name, "topic": pubsub.topic})
    with pytest.raises(QueueConfigError, match="no dead-letter policy"):
        open_queue(f"pubsub://{name}")


def test_missing_subscription_is_a_clear_error(
    pubsub: Topology, pubsub_emulator: PubSubEmulator
) -> None:
    with pytest.raises(QueueConfigError, match="does not exist"):
        open_queue(f"pubsub://projects/{pubsub_emulator.project}/subscriptions/nothing-here")


def test_malformed_uri_is_refused() -> None:
    with pytest.raises(QueueConfigError, match="must name a subscription"):
        open_queue("pubsub://projects/p/topics/t")


def test_attempts_release_and_dead_letter(pubsub: Topology) -> None:
    message_id = pubsub.publish(b"payload")
    queue = open_queue(pubsub.uri, lease_s=120)
    assert queue.max_attempts == 5
    [message] = queue.receive(10, wait_s=2)
    assert (message.id, message.body, message.attempt) == (message_id, b"payload", 1)
    queue.release([message])
    [again] = queue.receive(10, wait_s=2)
    assert (again.id, again.attempt) == (message_id, 2)
    queue.dead_letter(again, "invalid v2 request")
    [dead] = pubsub.pull_dead()
    assert dead.message.data == b"payload"
    assert dead.message.attributes[MESSAGE_ID_ATTRIBUTE] == message_id
    assert dead.message.attributes[REASON_ATTRIBUTE] == "invalid v2 request"
    assert queue.receive(10, wait_s=1) == []  # Acked: gone from the work subscription.


def test_worker_end_to_end_on_pubsub(pubsub: Topology, tmp_path: Path) -> None:
    rows = {i: ((np.arange(512) * (i + 5)) % 11).astype(np.float32)[None] / 4 for i in range(30)}
    sent = {pubsub.publish(encode_request({"input": r}).body): i for i, r in rows.items()}
    poison = pubsub.publish(b"\x00not json")
    model = load_model("builtin://mlp", device="cpu")
    settings = WorkerSettings(
        queue=pubsub.uri,
        model="builtin://mlp",
        max_batch_size=16,
        poll_wait_s=1,
        exit_when_idle_s=1,
        metrics_port=0,
    )
    store = open_result_store((tmp_path / "results").as_uri())
    worker = Worker(open_queue(settings.queue), store, model, settings)
    asyncio.run(worker.run())

    assert worker.counts()["processed"] == len(sent)
    for message_id, index in sent.items():
        document = json.loads(store.get(message_id) or b"{}")
        assert document["message_id"] == message_id
        expected = model.predict_batch({"input": rows[index]})["output"].ravel()
        np.testing.assert_allclose(document["outputs"][0]["data"], expected, rtol=1e-4, atol=1e-5)
    [dead] = pubsub.pull_dead()
    assert dead.message.attributes[MESSAGE_ID_ATTRIBUTE] == poison
    assert "not valid JSON" in dead.message.attributes[REASON_ATTRIBUTE]
