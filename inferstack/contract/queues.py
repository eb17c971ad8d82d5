"""Queue URIs: how the components name a queue to `inferstack work`, and how the worker reads it.

One builder (`queue_uri`, used by the components) and one parser (`parse_queue_uri`, used by the
worker to pick its backend), tested as a round trip. The forms, by scheme:

- `sqs://<queue url or name>`
- `pubsub://projects/<project>/subscriptions/<subscription>`
- `redis://HOST:PORT/DB?stream=NAME` (or `rediss://` for TLS)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qs, quote, urlsplit

QueueKind = Literal["sqs", "pubsub", "redis-streams"]
"""The spec's `batch.queue.kind` values."""

SCHEMES: Final[dict[str, str]] = {
    "sqs": "sqs://<queue url or name>",
    "pubsub": "pubsub://projects/<project>/subscriptions/<subscription>",
    "redis": "redis://HOST:PORT/DB?stream=NAME",
    "rediss": "rediss://HOST:PORT/DB?stream=NAME",
}
"""Queue URI forms, by scheme."""
KIND_OF_SCHEME: Final[dict[str, QueueKind]] = {
    "sqs": "sqs",
    "pubsub": "pubsub",
    "redis": "redis-streams",
    "rediss": "redis-streams",
}
REDIS_DEFAULT_DB: Final = 0
_SUBSCRIPTION: Final = re.compile(r"^projects/([^/]+)/subscriptions/([^/]+)$")


class QueueUriError(ValueError):
    """A queue URI that names no usable queue; the message says the expected form."""


@dataclass(frozen=True)
class QueueAddress:
    """What a queue URI names: the kind, the queue itself, and where it lives."""

    kind: QueueKind
    name: str
    """SQS queue URL or name, Pub/Sub subscription ID, or Redis stream name."""
    gcp_project: str | None = None
    redis_address: str | None = None
    """host:port, for Redis Streams."""
    redis_db: int = REDIS_DEFAULT_DB
    tls: bool = False


def queue_uri(
    kind: QueueKind,
    name: str,
    *,
    gcp_project: str | None = None,
    redis_address: str | None = None,
) -> str:
    """The worker's `--queue` URI for a queue of `kind` called `name`."""
    if not name:
        raise QueueUriError("a queue URI needs the queue's name")
    if kind == "sqs":
        return f"sqs://{name}"
    if kind == "pubsub":
        if not gcp_project:
            raise QueueUriError("a pubsub queue URI needs the GCP project")
        return f"pubsub://projects/{gcp_project}/subscriptions/{name}"
    if not redis_address:
        raise QueueUriError("a redis-streams queue URI needs the Redis address (host:port)")
    return f"redis://{redis_address}/{REDIS_DEFAULT_DB}?stream={quote(name, safe='')}"


def parse_queue_uri(uri: str) -> QueueAddress:
    """What `uri` names; raises `QueueUriError` naming the expected form."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise QueueUriError(
            f"queue URI {uri!r} is not understood; use one of: {', '.join(SCHEMES.values())}"
        )
    kind = KIND_OF_SCHEME[scheme]
    if kind == "sqs":
        if not rest:
            raise QueueUriError(f"queue URI {uri!r} names no queue; use {SCHEMES['sqs']}")
        return QueueAddress("sqs", rest)
    if kind == "pubsub":
        match = _SUBSCRIPTION.match(rest.strip("/"))
        if not match:
            raise QueueUriError(f"queue URI {uri!r} must name a subscription: {SCHEMES['pubsub']}")
        return QueueAddress("pubsub", match.group(2), gcp_project=match.group(1))
    parts = urlsplit(uri)
    streams = parse_qs(parts.query).get("stream")
    if not streams or not streams[-1]:
        raise QueueUriError(
            f"queue URI {uri!r} names no stream; add ?stream=NAME, e.g. "
            "redis://localhost:6379/0?stream=requests"
        )
    db_text = parts.path.strip("/") or str(REDIS_DEFAULT_DB)
    if not db_text.isdigit():
        raise QueueUriError(f"queue URI {uri!r}: the path must be a database number, e.g. /0")
    return QueueAddress(
        "redis-streams",
        streams[-1],
        redis_address=parts.netloc,
        redis_db=int(db_text),
        tls=scheme == "rediss",
    )
