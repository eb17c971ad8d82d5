"""The acceptor's side of the link: the model's signature and a batcher that is a proxy.

`RemoteBatcher` has what the routes use of a `DynamicBatcher` (`routes.Batcher`): admission
reads the model side's shared state (`SharedState`), and `submit` sends the decoded rows over
the link and waits for the caller's own rows back. What the batcher raised on the model side is
raised here as the same class with the same message, so the routes answer exactly as in one
process (429 with the same Retry-After, 503 draining, 422 for a rejected input, ...).
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Final

from inferstack.runtime.batcher import (
    BatcherConfig,
    BatchTooLargeError,
    DrainingError,
    InputRejectedError,
    ModelError,
    QueueFullError,
    RequestTimeoutError,
    Tensors,
)
from inferstack.runtime.failures import TransientModelError, transient
from inferstack.runtime.frontdoor.shared import SharedState
from inferstack.runtime.frontdoor.wire import Layout, Link, pack_arrays, unpack_arrays
from inferstack.runtime.tensors import TensorSpec

INFER: Final = "infer"
CANCEL: Final = "cancel"
RESULT: Final = "ok"
ERROR: Final = "error"

_KINDS: Final[tuple[tuple[str, type[BaseException]], ...]] = (
    # Most specific first: InputRejectedError is a ModelError.
    ("queue_full", QueueFullError),
    ("draining", DrainingError),
    ("timeout", RequestTimeoutError),
    ("too_large", BatchTooLargeError),
    ("rejected", InputRejectedError),
    ("model", ModelError),
)


class TransientRemoteModelError(ModelError, TransientModelError):
    """A model failure that was the machine's on the model side (out of memory, a dead model
    process): 503 with Retry-After, as in one process."""


def describe(error: BaseException) -> tuple[str, str, int, bool]:
    """(kind, message, Retry-After, transient) of what the batcher raised, for the link."""
    retry = error.retry_after_s if isinstance(error, QueueFullError) else 0
    for kind, cls in _KINDS:
        if isinstance(error, cls):
            return kind, str(error), retry, transient(error)
    return "internal", f"{type(error).__name__}: {error}", 0, False


def rebuild(kind: str, message: str, retry_after_s: int, is_transient: bool) -> BaseException:
    """The exception `describe` described, raised to the routes."""
    if kind == "queue_full":
        return QueueFullError(message, retry_after_s)
    if kind == "model" and is_transient:
        return TransientRemoteModelError(message)
    for name, cls in _KINDS:
        if name == kind:
            return cls(message)
    return RuntimeError(message)  # The HTTP layer answers 500 and logs it, as in one process.


@dataclass
class RemoteSignature:
    """The model's signature, sent by the model side once it is warm."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str = "inferstack"


@dataclass
class RemoteBatcher:
    """The one batcher of the model side, as seen from an acceptor (see the module docstring)."""

    link: Link
    shared: SharedState
    config: BatcherConfig
    _waiting: dict[int, asyncio.Future[Tensors]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def accepting(self) -> bool:
        """The model side's batcher still admits requests."""
        return self.shared.accepting

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch on the model side, from every acceptor."""
        return self.shared.queue_depth

    @property
    def outstanding(self) -> int:
        """Requests of this acceptor sent and not yet answered."""
        return len(self._waiting)

    def retry_after_s(self) -> int:
        """The model side's Retry-After for a refused request."""
        return self.shared.retry_after_s

    async def submit(self, inputs: Tensors, *, timeout_s: float | None = None) -> Tensors:
        """Send the rows to the model side and wait for this request's own outputs."""
        if not self.shared.accepting:
            raise DrainingError("the server is draining and accepts no new requests")
        request_id = next(self._ids)
        future: asyncio.Future[Tensors] = asyncio.get_running_loop().create_future()
        layout, pickled, buffers = pack_arrays(inputs)
        self._waiting[request_id] = future
        self._idle.clear()
        self.link.send((INFER, request_id, layout, pickled, timeout_s), buffers)
        try:
            return await future
        except asyncio.CancelledError:
            # The client went away: the model side drops the request if it has not run yet.
            self.link.send((CANCEL, request_id))
            raise
        finally:
            self._waiting.pop(request_id, None)
            if not self._waiting:
                self._idle.set()

    def answered(self, header: tuple[object, ...], payload: bytearray) -> None:
        """A result or an error from the model side (unknown ids: callers already gone)."""
        future = self._waiting.get(int(header[1]))  # type: ignore[call-overload]
        if future is None or future.done():
            return
        if header[0] == RESULT:
            layout: Layout | None = header[2]  # type: ignore[assignment]
            future.set_result(unpack_arrays(layout, header[3], payload))
        else:
            kind, message, retry, is_transient = header[2:6]
            future.set_exception(rebuild(str(kind), str(message), int(retry), bool(is_transient)))  # type: ignore[call-overload]

    def fail_all(self, message: str) -> None:
        """The link is gone: every waiting caller gets a transient model error (503)."""
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(TransientRemoteModelError(message))

    def stop_accepting(self) -> None:
        """The model side decides when to stop accepting; nothing to do here."""

    async def drain(self) -> None:
        """Wait until every request this acceptor sent is answered."""
        if self._waiting:
            await self._idle.wait()

    async def close(self) -> None:
        """Drain; the link belongs to the acceptor."""
        await self.drain()


__all__ = [
    "RemoteBatcher",
    "RemoteSignature",
    "TransientRemoteModelError",
    "describe",
    "rebuild",
]
