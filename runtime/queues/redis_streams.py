"""Redis Streams consumer: a consumer group, the pending entries list, XAUTOCLAIM for recovery.

URI: `redis://HOST:PORT/DB?stream=NAME[&group=G][&consumer=C][&dead_letter=NAME][&max_attempts=N]`
(`rediss://` for TLS). An entry carries the v2 request in its `body` field, and optionally the
binary extension's JSON header length in `header_length`.

Redis has no visibility timeout: an entry read by a consumer sits in the group's pending list
until acked, and a consumer that died leaves it there. Every receive therefore first reclaims
entries idle for longer than `lease_s` (XAUTOCLAIM), then reads new ones (XREADGROUP). The
lease is kept alive, and entries are released or delayed, by rewriting their idle time with
XCLAIM ... IDLE ms JUSTID, inside a Lua script that first checks this consumer still owns the
entry, so a slow worker never steals back an entry another one already reclaimed. JUSTID keeps
the delivery counter unchanged: only real deliveries count as attempts.

Dead-lettering appends the entry, the reason and the attempt count to the dead-letter stream
(default `<stream>:dead`) and acks the original in one Lua script, again only while this
consumer owns the entry, so an entry reaches the dead-letter stream once.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis
from typing_extensions import override

from inferstack.runtime.queues import Message, QueueConfigError, QueueConsumer, byte_count
from inferstack.runtime.redaction import redact_uri

DEFAULT_GROUP: Final = "inferstack"
DEFAULT_MAX_ATTEMPTS: Final = 5
BODY_FIELD: Final = b"body"
HEADER_LENGTH_FIELD: Final = b"header_length"
_OPTIONS: Final = {"stream", "group", "consumer", "dead_letter", "max_attempts"}

# KEYS[1] stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] idle ms, ARGV[4..] entry ids.
# Sets the idle time of the entries this consumer still owns; returns how many it owned.
_SET_IDLE: Final = """
local owned = 0
for i = 4, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #entry == 1 and entry[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    owned = owned + 1
  end
end
return owned
"""


# KEYS[1] stream, KEYS[2] dead-letter stream; ARGV[1] group, ARGV[2] consumer, ARGV[3] entry
# id, ARGV[4..] field/value pairs. Appends to the dead-letter stream and acks, atomically, only
# if this consumer still owns the entry (else another consumer is working it: returns 0).
_DEAD_LETTER: Final = """
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #entry ~= 1 or entry[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class RedisStreamQueue(QueueConsumer):
    """A Redis Streams consumer-group member (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        uri: str,
        stream: str,
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        dead_letter_stream: str | None = None,
        lease_s: float = 60.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if max_attempts < 1:
            raise QueueConfigError(
                f"{redact_uri(uri)}: max_attempts must be at least 1, got {max_attempts}"
            )
        self.uri = redact_uri(uri)
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        self.stream = stream
        self.group = group
        # Unique per process: two workers sharing a consumer name would ack each other's work.
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.dead_letter_stream = dead_letter_stream or f"{stream}:dead"
        self._client = client
        self._set_idle = client.register_script(_SET_IDLE)
        self._dead_letter = client.register_script(_DEAD_LETTER)
        self._claim_cursor = "0-0"
        try:
            # From the start of the stream: entries written before the first worker are work too.
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    @classmethod
    def from_uri(
        cls, uri: str, *, lease_s: float = 60.0, max_attempts: int | None = None
    ) -> RedisStreamQueue:
        """Parse `uri` (see the module docstring) and connect."""
        parts = urlsplit(uri)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = sorted(set(query) - _OPTIONS)
        if unknown:
            raise QueueConfigError(
                f"queue URI {redact_uri(uri)!r}: unknown option(s) {unknown}; "
                f"known: {sorted(_OPTIONS)}"
            )
        stream = query.get("stream")
        if not stream:
            raise QueueConfigError(
                f"queue URI {redact_uri(uri)!r} names no stream; add ?stream=NAME, e.g. "
                "redis://localhost:6379/0?stream=requests"
            )
        attempts = max_attempts
        if "max_attempts" in query:
            try:
                attempts = int(query["max_attempts"])
            except ValueError:
                raise QueueConfigError(
                    f"queue URI {redact_uri(uri)!r}: max_attempts must be an integer"
                ) from None
        connection_url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        client = redis.Redis.from_url(connection_url, socket_timeout=None)
        return cls(
            client,
            uri=uri,
            stream=stream,
            group=query.get("group", DEFAULT_GROUP),
            consumer=query.get("consumer"),
            dead_letter_stream=query.get("dead_letter"),
            lease_s=lease_s,
            max_attempts=attempts or DEFAULT_MAX_ATTEMPTS,
        )

    @property
    def _lease_ms(self) -> int:
        return max(1, int(self.lease_s * 1000))

    @override
    def receive(self, max_messages: int, wait_s: float) -> list[Message]:
        messages = self._reclaim(max_messages)
        room = max_messages - len(messages)
        if room <= 0:
            return messages
        # BLOCK only when nothing was reclaimed: reclaimed work must start at once.
        block = None if messages else max(1, int(wait_s * 1000))
        reply: Any = self._client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=room, block=block
        )
        for _stream, entries in reply or []:
            messages.extend(self._message(entry_id, fields, 1) for entry_id, fields in entries)
        return messages

    def _reclaim(self, max_messages: int) -> list[Message]:
        """Entries that a dead or released consumer left idle for longer than the lease."""
        reply: Any = self._client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self._lease_ms,
            start_id=self._claim_cursor,
            count=max_messages,
        )
        cursor, entries = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._claim_cursor = _text(cursor)
        if deleted:
            # Trimmed from the stream while pending: nothing left to work on.
            self._client.xack(self.stream, self.group, *deleted)
        if not entries:
            return []
        counts = self._delivery_counts([entry_id for entry_id, _ in entries])
        return [
            self._message(entry_id, fields, counts.get(_text(entry_id), 1))
            for entry_id, fields in entries
        ]

    def _delivery_counts(self, entry_ids: Sequence[Any]) -> dict[str, int]:
        pipe = self._client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        counts: dict[str, int] = {}
        for rows in pipe.execute():
            for row in rows:
                counts[_text(row["message_id"])] = int(row["times_delivered"])
        return counts

    def _message(self, entry_id: Any, fields: dict[bytes, bytes], attempt: int) -> Message:
        header = fields.get(HEADER_LENGTH_FIELD)
        header_length = byte_count(header)
        problem = None
        if BODY_FIELD not in fields:
            problem = (
                f"stream entry has no 'body' field (fields: {sorted(_text(k) for k in fields)}); "
                f"write requests as XADD {self.stream} * body '<v2 request JSON>'"
            )
        elif header is not None and header_length is None:
            problem = f"'header_length' must be a byte count, got {header!r}"
        return Message(
            id=_text(entry_id),
            body=fields.get(BODY_FIELD, b""),
            attempt=attempt,
            handle=_text(entry_id),
            header_length=header_length,
            problem=problem,
        )

    @override
    def ack(self, messages: Sequence[Message]) -> None:
        if messages:
            self._client.xack(self.stream, self.group, *[str(m.handle) for m in messages])

    @override
    def extend(self, messages: Sequence[Message]) -> None:
        self._idle(messages, 0)

    @override
    def retry_later(self, message: Message, delay_s: float) -> None:
        # Claimable once idle for lease_s: start it at lease_s - delay.
        self._idle([message], max(0, self._lease_ms - int(delay_s * 1000)))

    @override
    def release(self, messages: Sequence[Message]) -> None:
        self._idle(messages, self._lease_ms)

    def _idle(self, messages: Sequence[Message], idle_ms: int) -> None:
        if messages:
            self._set_idle(
                keys=[self.stream],
                args=[self.group, self.consumer, idle_ms, *[str(m.handle) for m in messages]],
            )

    @override
    def dead_letter(self, message: Message, reason: str) -> None:
        fields: list[Any] = [
            "body", message.body,
            "message_id", message.id,
            "stream", self.stream,
            "reason", reason,
            "attempts", message.attempt,
        ]  # fmt: skip
        if message.header_length is not None:
            fields += ["header_length", message.header_length]
        self._dead_letter(
            keys=[self.stream, self.dead_letter_stream],
            args=[self.group, self.consumer, str(message.handle), *fields],
        )

    @override
    def backlog(self) -> int | None:
        for group in self._client.xinfo_groups(self.stream):
            if _text(group["name"]) == self.group:
                lag = group.get("lag")
                pending = int(group.get("pending") or 0)
                if lag is None:  # Redis cannot tell after deletions in the middle of the stream.
                    return None
                return int(lag) + pending
        return None

    @override
    def close(self) -> None:
        self._client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
