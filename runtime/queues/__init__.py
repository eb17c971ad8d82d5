"""Queue consumers for `inferstack work`: one small interface over SQS, Pub/Sub and Redis Streams.

The worker only sees `QueueConsumer` and `Message`. Every backend gives the same guarantees:
- a received message stays invisible to other consumers for `lease_s` unless extended;
- `ack` removes it for good (the worker calls it only after the result is durable);
- `retry_later` makes it deliverable again after a delay (backoff), counting an attempt;
- `release` makes it deliverable again at once (used when draining on an interruption);
- `dead_letter` moves it to the queue's dead-letter destination with the reason.

`Message.id` is stable across redeliveries, so results keyed by it are idempotent.

Backends are imported only when their URI scheme is used, so the image needs only the client
of the queue it consumes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from inferstack.contract.queues import SCHEMES
from inferstack.runtime.redaction import redact_uri


def byte_count(value: str | bytes | None) -> int | None:
    """A header-length attribute as a byte count: ASCII digits only, else None.

    `str.isdigit` alone is not enough: it accepts superscripts and other digits `int` refuses,
    and a receive that raised on one message would hand back its whole batch, again and again.
    """
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


class QueueConfigError(ValueError):
    """A queue URI or the queue's own configuration is unusable; the message says the fix."""


@dataclass(frozen=True)
class Message:
    """One delivery of a queue message."""

    id: str
    """Stable across redeliveries (SQS MessageId, Pub/Sub message_id, stream entry id)."""
    body: bytes
    """A KServe v2 inference request (JSON, or JSON header plus binary tensors)."""
    attempt: int
    """1 on the first delivery; grows with every redelivery, as the queue counts them."""
    handle: object = field(repr=False, compare=False)
    """Backend receipt (SQS receipt handle, Pub/Sub ack id, stream entry id)."""
    header_length: int | None = None
    """Length of the JSON header when the body uses the binary tensor extension."""
    problem: str | None = None
    """Why the delivery cannot carry a request at all (e.g. a stream entry without `body`);
    such a message is dead-lettered with this reason."""


class QueueConsumer(ABC):
    """A consumer of one queue (see the module docstring for the contract).

    Methods block; the worker calls them from a thread. They take batches because every
    backend has batch calls and the worker works in batches.
    """

    uri: str
    """The queue's URI as shown in logs and errors: credentials redacted (`redact_uri`)."""
    lease_s: float
    """How long a received message stays invisible to other consumers without `extend`."""
    max_attempts: int
    """Deliveries before a failing message is dead-lettered (the queue's dead-letter policy)."""

    @abstractmethod
    def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        """Up to `max_messages` messages, waiting at most about `wait_s` for the first."""

    @abstractmethod
    def ack(self, messages: Sequence[Message]) -> None:
        """Remove messages for good; call only once their results are durable."""

    @abstractmethod
    def extend(self, messages: Sequence[Message]) -> None:
        """Keep messages invisible for another `lease_s` (visibility / ack deadline / idle)."""

    @abstractmethod
    def retry_later(self, message: Message, delay_s: float) -> None:
        """Make a failed message deliverable again after `delay_s`."""

    @abstractmethod
    def release(self, messages: Sequence[Message]) -> None:
        """Make messages deliverable again at once, without waiting for the lease to expire."""

    @abstractmethod
    def dead_letter(self, message: Message, reason: str) -> None:
        """Move a message to the dead-letter destination, recording `reason`, and ack it."""

    @abstractmethod
    def backlog(self) -> int | None:
        """Messages waiting in the queue, or None when the backend cannot tell cheaply."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to close.
        """Release connections."""


def open_queue(
    uri: str, *, lease_s: float = 60.0, max_attempts: int | None = None
) -> QueueConsumer:
    """Open the queue named by `uri` (see SCHEMES).

    `lease_s` is the visibility timeout / ack deadline / claim idle time the worker keeps
    extending. `max_attempts` overrides the queue's dead-letter policy where the queue has
    none of its own (Redis Streams); SQS and Pub/Sub read theirs from the queue.
    """
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise QueueConfigError(
            f"queue URI {redact_uri(uri)!r} is not understood; "
            f"use one of: {', '.join(SCHEMES.values())}"
        )
    if lease_s <= 0:
        raise QueueConfigError(f"lease_s must be positive, got {lease_s}")
    if scheme == "sqs":
        from inferstack.runtime.queues.sqs import SqsQueue

        return SqsQueue.from_uri(uri, lease_s=lease_s, max_attempts=max_attempts)
    if scheme == "pubsub":
        from inferstack.runtime.queues.pubsub import PubSubQueue

        return PubSubQueue.from_uri(uri, lease_s=lease_s, max_attempts=max_attempts)
    from inferstack.runtime.queues.redis_streams import RedisStreamQueue

    return RedisStreamQueue.from_uri(uri, lease_s=lease_s, max_attempts=max_attempts)


__all__ = [
    "SCHEMES",
    "Message",
    "QueueConfigError",
    "QueueConsumer",
    "byte_count",
    "open_queue",
]
