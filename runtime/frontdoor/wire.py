"""The link between an acceptor and the model side: framed messages over a socket pair.

A frame is a 12-byte prefix (header length, payload length), a pickled header (a small tuple:
the message's kind, the request id, the arrays' layout; never tensor bytes) and a payload: the
raw bytes of the arrays, one after the other, written from the arrays' own memory
(`writelines`) and read into one buffer that the arrays are views of (`BufferedProtocol`), so a
tensor is neither pickled nor copied in user space beyond the kernel's socket hop. Arrays of
Python objects (BYTES tensors) have no raw form and travel pickled in the header instead.

Both ends are asyncio protocols on the serving event loop, never blocking it: a side that
cannot write at once buffers (asyncio's transport), so two sides sending large tensors to each
other cannot deadlock as two blocking pipes would.
"""

from __future__ import annotations

import asyncio
import math
import pickle
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final, cast

import numpy as np
from typing_extensions import override

Layout = list[tuple[str, str, tuple[int, ...]]]
"""(name, dtype, shape) of each array of a payload, in payload order."""

_PREFIX: Final = struct.Struct("<IQ")
_SCRATCH_BYTES: Final = 256 * 1024
"""Read buffer for prefixes, headers and small payloads; larger payloads are read in place."""


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[Layout | None, object, list[memoryview]]:
    """The layout, the pickled fallback and the buffers that carry `arrays`.

    Numeric arrays: (layout, None, their memory). Any object array: (None, arrays, []), the
    whole mapping pickled in the header.
    """
    if any(array.dtype == np.object_ for array in arrays.values()):
        return None, dict(arrays), []
    contiguous = {name: np.ascontiguousarray(array) for name, array in arrays.items()}
    layout: Layout = [(name, a.dtype.str, tuple(a.shape)) for name, a in contiguous.items()]
    return layout, None, [a.data.cast("B") for a in contiguous.values() if a.nbytes]


def unpack_arrays(layout: Layout | None, pickled: object, payload: bytearray) -> dict[str, Any]:
    """The arrays `pack_arrays` described: views of `payload` (writable), or the pickled ones."""
    if layout is None:
        return cast(dict[str, Any], pickled)
    arrays: dict[str, Any] = {}
    offset = 0
    for name, dtype_text, shape in layout:
        dtype = np.dtype(dtype_text)
        count = math.prod(shape)  # Not np.prod: a tenth of its cost on a short tuple.
        arrays[name] = np.frombuffer(payload, dtype, count, offset).reshape(shape)
        offset += count * dtype.itemsize
    return arrays


Receiver = Callable[[Any, bytearray], None]
"""Called with each message's header (unpickled) and its payload."""


class Link(asyncio.BufferedProtocol):
    """One end of the link: `send` frames, and each frame received goes to `receiver`."""

    def __init__(self, receiver: Receiver, lost: Callable[[], None]) -> None:
        self._receiver = receiver
        self._lost = lost
        self.transport: asyncio.Transport | None = None
        self._scratch = bytearray(_SCRATCH_BYTES)
        self._start = 0
        self._end = 0
        self._header: Any = None
        self._payload: bytearray | None = None
        self._filled = 0
        self._direct = False
        self._outgoing: list[bytes | memoryview] = []
        self._flush_scheduled = False

    # Sending ---------------------------------------------------------------------------------

    def send(self, header: object, buffers: list[memoryview] | None = None) -> None:
        """Queue one frame; a no-op once the link is closed.

        Frames queued in one turn of the event loop go out in one write at its end: a batch's
        answers, or the requests parsed from one read, cost one system call, not one each.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        encoded = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
        size = sum(buffer.nbytes for buffer in buffers) if buffers else 0
        self._outgoing.append(_PREFIX.pack(len(encoded), size))
        self._outgoing.append(encoded)
        if buffers:
            self._outgoing.extend(buffers)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outgoing, self._outgoing = self._outgoing, []
        transport = self.transport
        if outgoing and transport is not None and not transport.is_closing():
            transport.writelines(outgoing)

    def close(self) -> None:
        """Close the link after what is queued (the other end sees it lost)."""
        self._flush()
        if self.transport is not None:
            self.transport.close()

    # Receiving -------------------------------------------------------------------------------

    @override
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    @override
    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._lost()

    @override
    def get_buffer(self, sizehint: int) -> memoryview:
        if self._direct:
            assert self._payload is not None
            return memoryview(self._payload)[self._filled :]
        if self._end == len(self._scratch):
            # Keep what is unread at the front; grow only for a header larger than the buffer.
            unread = self._end - self._start
            if self._start == 0:
                self._scratch.extend(bytes(len(self._scratch)))
            else:
                self._scratch[:unread] = self._scratch[self._start : self._end]
                self._start, self._end = 0, unread
        return memoryview(self._scratch)[self._end :]

    @override
    def buffer_updated(self, nbytes: int) -> None:
        if self._direct:
            self._filled += nbytes
            self._payload_progress()
            return
        self._end += nbytes
        self._parse()

    def _parse(self) -> None:
        while True:
            if self._payload is not None:
                take = min(len(self._payload) - self._filled, self._end - self._start)
                self._payload[self._filled : self._filled + take] = self._scratch[
                    self._start : self._start + take
                ]
                self._start += take
                self._filled += take
                if not self._payload_progress():
                    break
                continue
            if self._end - self._start < _PREFIX.size:
                break
            header_bytes, payload_bytes = _PREFIX.unpack_from(self._scratch, self._start)
            if self._end - self._start < _PREFIX.size + header_bytes:
                break
            begin = self._start + _PREFIX.size
            self._header = pickle.loads(self._scratch[begin : begin + header_bytes])
            self._start = begin + header_bytes
            self._payload = bytearray(payload_bytes)
            self._filled = 0
        if self._start == self._end:
            self._start = self._end = 0

    def _payload_progress(self) -> bool:
        """Deliver the frame if its payload is complete (True); else read the rest in place
        when it is large, so that a tensor is not copied out of the scratch buffer."""
        payload = self._payload
        assert payload is not None
        missing = len(payload) - self._filled
        if missing:
            self._direct = self._start == self._end and missing >= _SCRATCH_BYTES // 4
            return False
        self._direct = False
        header, self._header, self._payload = self._header, None, None
        self._receiver(header, payload)
        return True


async def open_link(sock: Any, receiver: Receiver, lost: Callable[[], None]) -> Link:
    """A `Link` on a connected socket (one end of a `socket.socketpair`)."""
    loop = asyncio.get_running_loop()
    _transport, link = await loop.connect_accepted_socket(lambda: Link(receiver, lost), sock)
    return link
