"""Results in Redis: one string key per message, `SET NX`, so the first write wins.

Durability is Redis's: run it with AOF (`appendonly yes`, `appendfsync everysec` or `always`)
when results must survive a Redis restart, because the worker acks once SET returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis
from typing_extensions import override

from inferstack.runtime.redaction import redact_uri
from inferstack.runtime.results import ResultStore, ResultStoreConfigError, result_key

DEFAULT_PREFIX: Final = "inferstack:result:"


class RedisStore(ResultStore):
    """Results as Redis strings under `prefix + message id`."""

    def __init__(self, client: redis.Redis, *, uri: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.uri = redact_uri(uri)
        self.prefix = prefix
        self._client = client

    @classmethod
    def from_uri(cls, uri: str) -> RedisStore:
        """`redis://HOST:PORT/DB[?prefix=P]`."""
        parts = urlsplit(uri)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - {"prefix"})
        if unknown:
            raise ResultStoreConfigError(
                f"results URI {redact_uri(uri)!r}: unknown option(s) {unknown}; "
                "the only option is prefix"
            )
        client = redis.Redis.from_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
        return cls(client, uri=uri, prefix=query.get("prefix", DEFAULT_PREFIX))

    def key(self, message_id: str) -> str:
        """The Redis key of `message_id`'s result."""
        return f"{self.prefix}{result_key(message_id)}"

    @override
    def put_many(self, results: Mapping[str, bytes]) -> dict[str, bool]:
        pipe = self._client.pipeline(transaction=False)
        for message_id, document in results.items():
            pipe.set(self.key(message_id), document, nx=True)
        replies: list[Any] = pipe.execute()
        return {message_id: bool(reply) for message_id, reply in zip(results, replies, strict=True)}

    @override
    def existing(self, message_ids: Iterable[str]) -> set[str]:
        ids = list(message_ids)
        if not ids:
            return set()
        pipe = self._client.pipeline(transaction=False)
        for message_id in ids:
            pipe.exists(self.key(message_id))
        return {message_id for message_id, found in zip(ids, pipe.execute(), strict=True) if found}

    @override
    def get(self, message_id: str) -> bytes | None:
        value: Any = self._client.get(self.key(message_id))
        return None if value is None else bytes(value)

    @override
    def close(self) -> None:
        self._client.close()
