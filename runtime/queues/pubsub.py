"""Google Cloud Pub/Sub consumer (synchronous unary pull).

URI: `pubsub://projects/<project>/subscriptions/<subscription>`. Credentials come from the
standard Google chain (Workload Identity on GKE); `PUBSUB_EMULATOR_HOST` points the client at
the emulator.

Unary pull rather than streaming pull because the worker pulls exactly what its batcher can
take and extends or releases each message explicitly: streaming pull leases messages on its own
schedule, which is what a drain on a 30 s preemption notice must not have.

The subscription must have a dead-letter policy: `max_delivery_attempts` is the number of
attempts, and the worker publishes a message to the dead-letter topic itself (with the reason in
the `inferstack-dead-letter-reason` attribute) before acking it. Pub/Sub's own forwarding covers
a worker that dies in between. The dead-letter topic needs a subscription of its own, or Pub/Sub
drops what reaches it.

`ModifyAckDeadline` does all the rest: the lease (`lease_s`, at most 600 s), a release (0 s) and
a delayed retry (the delay: the message is redelivered once the deadline lapses).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any, Final

from typing_extensions import override

from inferstack.runtime.queues import Message, QueueConfigError, QueueConsumer, byte_count
from inferstack.runtime.redaction import redact_uri

with warnings.catch_warnings():
    # google-api-core warns about the interpreter's end-of-life date at import; not actionable.
    warnings.simplefilter("ignore", FutureWarning)
    from google.api_core import exceptions as google_exceptions
    from google.cloud import pubsub_v1

MAX_ACK_DEADLINE_S: Final = 600
MAX_ACK_IDS: Final = 2500
"""Pub/Sub caps the ack ids of one Acknowledge / ModifyAckDeadline request."""
HEADER_LENGTH_ATTRIBUTE: Final = "inference-header-content-length"
MESSAGE_ID_ATTRIBUTE: Final = "inferstack-message-id"
REASON_ATTRIBUTE: Final = "inferstack-dead-letter-reason"
_SUBSCRIPTION: Final = re.compile(r"^projects/[^/]+/subscriptions/[^/]+$")


class PubSubQueue(QueueConsumer):
    """A Pub/Sub subscription with a dead-letter policy (see the module docstring)."""

    def __init__(
        self,
        subscriber: Any,
        publisher: Any,
        *,
        uri: str,
        subscription: str,
        lease_s: float = 60.0,
        max_attempts: int | None = None,
    ) -> None:
        self.uri = redact_uri(uri)
        self.subscription = subscription
        self.lease_s = min(lease_s, MAX_ACK_DEADLINE_S)
        self._subscriber = subscriber
        self._publisher = publisher
        try:
            found = subscriber.get_subscription(request={"subscription": subscription})
        except google_exceptions.NotFound:
            raise QueueConfigError(
                f"Pub/Sub subscription {subscription} does not exist; create it, or check the "
                "project in the URI"
            ) from None
        policy = found.dead_letter_policy
        if not policy.dead_letter_topic:
            raise QueueConfigError(
                f"Pub/Sub subscription {subscription} has no dead-letter policy, so a poison "
                "message would be redelivered forever; set one: gcloud pubsub subscriptions "
                "update ... --dead-letter-topic=<topic> --max-delivery-attempts=5"
            )
        self.dead_letter_topic = str(policy.dead_letter_topic)
        # Pub/Sub's default when the policy leaves it unset is 5.
        self.max_attempts = max_attempts or int(policy.max_delivery_attempts or 5)

    @classmethod
    def from_uri(
        cls, uri: str, *, lease_s: float = 60.0, max_attempts: int | None = None
    ) -> PubSubQueue:
        """`pubsub://projects/P/subscriptions/S` with the default Google client chain."""
        subscription = uri.removeprefix("pubsub://").strip("/")
        if not _SUBSCRIPTION.match(subscription):
            raise QueueConfigError(
                f"queue URI {redact_uri(uri)!r} must name a subscription: "
                "pubsub://projects/<project>/subscriptions/<subscription>"
            )
        return cls(
            pubsub_v1.SubscriberClient(),
            pubsub_v1.PublisherClient(),
            uri=uri,
            subscription=subscription,
            lease_s=lease_s,
            max_attempts=max_attempts,
        )

    @override
    def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        try:
            reply = self._subscriber.pull(
                request={"subscription": self.subscription, "max_messages": max_messages},
                timeout=max(1.0, wait_s),
                retry=None,
            )
        except google_exceptions.DeadlineExceeded:
            return []
        messages = [self._message(received) for received in reply.received_messages]
        if messages:
            # Pull leases for the subscription's ack deadline; make it ours at once.
            self.extend(messages)
        return messages

    def _message(self, received: Any) -> Message:
        attributes = dict(received.message.attributes)
        header = attributes.get(HEADER_LENGTH_ATTRIBUTE)
        header_length = byte_count(header)
        problem = None
        if header is not None and header_length is None:
            problem = f"attribute {HEADER_LENGTH_ATTRIBUTE} must be a byte count, got {header!r}"
        return Message(
            id=str(received.message.message_id),
            body=bytes(received.message.data),
            # 0 when the subscription has no dead-letter policy (refused at open).
            attempt=max(1, int(received.delivery_attempt)),
            handle=str(received.ack_id),
            header_length=header_length,
            problem=problem,
        )

    @override
    def ack(self, messages: Sequence[Message]) -> None:
        for chunk in _chunks(messages):
            self._subscriber.acknowledge(
                request={"subscription": self.subscription, "ack_ids": chunk}
            )

    @override
    def extend(self, messages: Sequence[Message]) -> None:
        self._deadline(messages, round(self.lease_s))

    @override
    def retry_later(self, message: Message, delay_s: float) -> None:
        self._deadline([message], max(0, min(MAX_ACK_DEADLINE_S, round(delay_s))))

    @override
    def release(self, messages: Sequence[Message]) -> None:
        self._deadline(messages, 0)

    def _deadline(self, messages: Sequence[Message], seconds: int) -> None:
        for chunk in _chunks(messages):
            self._subscriber.modify_ack_deadline(
                request={
                    "subscription": self.subscription,
                    "ack_ids": chunk,
                    "ack_deadline_seconds": seconds,
                }
            )

    @override
    def dead_letter(self, message: Message, reason: str) -> None:
        attributes = {
            MESSAGE_ID_ATTRIBUTE: message.id,
            REASON_ATTRIBUTE: reason[:1024],  # Attribute values are capped at 1024 bytes.
        }
        if message.header_length is not None:
            attributes[HEADER_LENGTH_ATTRIBUTE] = str(message.header_length)
        self._publisher.publish(self.dead_letter_topic, message.body, **attributes).result()
        self.ack([message])

    @override
    def backlog(self) -> int | None:
        # Only Cloud Monitoring knows num_undelivered_messages; KEDA's gcp-pubsub scaler reads
        # it there. Not worth a monitoring client in the image.
        return None

    @override
    def close(self) -> None:
        self._subscriber.close()


def _chunks(messages: Sequence[Message]) -> list[list[str]]:
    handles = [str(message.handle) for message in messages]
    return [handles[i : i + MAX_ACK_IDS] for i in range(0, len(handles), MAX_ACK_IDS)]
