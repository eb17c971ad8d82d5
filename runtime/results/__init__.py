"""Result stores for `inferstack work`: where each message's v2 response is written.

A result is keyed by the message id and written at most once: `put` returns False when a result
for that id already exists (a redelivered message whose earlier result is already durable), and
writes are atomic, so a reader never sees half a result and a crash never leaves one. The worker
acks a message only after `put` returned, so a result store that returns is durable enough to
ack against.

URIs: `file:///DIR` (`DIR/<message id>.json`), `redis://HOST:PORT/DB[?prefix=P]`,
`s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]`. Backends are imported only when used.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote

from inferstack.runtime.redaction import redact_uri

SCHEMES: Final = {
    "file": "file:///DIR",
    "redis": "redis://HOST:PORT/DB[?prefix=P]",
    "rediss": "rediss://HOST:PORT/DB[?prefix=P]",
    "s3": "s3://BUCKET[/PREFIX]",
    "gs": "gs://BUCKET[/PREFIX]",
}

_SAFE: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
"""A plain id, matched in full (`fullmatch`: `$` would also match before a trailing newline)."""


class ResultStoreConfigError(ValueError):
    """A result store URI is unusable; the message says the fix."""


class ResultStore(ABC):
    """Where results go, keyed by message id (see the module docstring)."""

    uri: str
    """The store's URI as shown in logs and errors: credentials redacted (`redact_uri`)."""

    @abstractmethod
    def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
        """Write each result unless one exists for that id; True where this call wrote it."""

    @abstractmethod
    def existing(self, message_ids: Iterable[str]) -> set[str]:
        """The ids among `message_ids` that already have a result."""

    @abstractmethod
    def get(self, message_id: str) -> bytes | None:
        """The stored result of `message_id`, or None."""

    def close(self) -> None:  # noqa: B027 - optional hook.
        """Release connections."""


RESULT_SUFFIX: Final = ".json"
"""Every stored result is one JSON document, named `<key>.json` in a directory or a bucket."""


def result_key(message_id: str) -> str:
    """A file- and object-name-safe key for a message id (ids are opaque to the queue's client).

    Plain ids (SQS UUIDs, Pub/Sub numbers, stream ids such as `1718-0`) are kept as they are;
    anything else is percent-encoded so that no id can escape its directory or prefix.
    """
    if _SAFE.fullmatch(message_id):
        return message_id
    return quote(message_id, safe="").replace(".", "%2E")


def object_name(prefix: str, message_id: str) -> str:
    """The object name of a message's result in a bucket: `PREFIX/<key>.json`."""
    name = f"{result_key(message_id)}{RESULT_SUFFIX}"
    return f"{prefix}/{name}" if prefix else name


def open_result_store(uri: str) -> ResultStore:
    """Open the result store named by `uri` (see SCHEMES)."""
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ResultStoreConfigError(
            f"results URI {redact_uri(uri)!r} is not understood; "
            f"use one of: {', '.join(SCHEMES.values())}"
        )
    if scheme == "file":
        from inferstack.runtime.results.local import DirectoryStore

        return DirectoryStore.from_uri(uri)
    if scheme in ("redis", "rediss"):
        from inferstack.runtime.results.redis_store import RedisStore

        return RedisStore.from_uri(uri)
    if scheme == "s3":
        from inferstack.runtime.results.s3 import S3Store

        return S3Store.from_uri(uri)
    from inferstack.runtime.results.gcs import GcsStore

    return GcsStore.from_uri(uri)


__all__ = [
    "RESULT_SUFFIX",
    "SCHEMES",
    "ResultStore",
    "ResultStoreConfigError",
    "object_name",
    "open_result_store",
    "result_key",
]
