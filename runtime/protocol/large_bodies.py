"""Large request bodies decoded in a helper process, so the event loop keeps answering.

The JSON decoder holds the GIL for the whole parse, so a thread would still stall the event loop
(health checks, admission of other requests) for as long as a large body takes. Bodies from
`LARGE_BODY_BYTES` on therefore go to one spawned helper process, one body at a time, which also
bounds the decode's memory (a JSON body takes many times its size as Python objects) to one
body's worth however many arrive together. A helper that dies (killed for memory, say) fails
only the body it was decoding; the next one starts a new helper.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Final

from inferstack.runtime.protocol import InferRequest, ProtocolError, Signature, decode_checked
from inferstack.runtime.tensors import TensorSpec

LARGE_BODY_BYTES: Final = 256 * 1024
"""Bodies from this size on are decoded in the helper process, off the event loop (a 256 KiB
JSON body parses in about 10 ms on this machine's cores; 64 MiB took 2.6 s)."""


@dataclass(frozen=True)
class _Signature:
    """The part of a model the codec reads, small enough to send to the decoder process."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


def _decode_in_child(
    body: bytes, model: _Signature, header_length: int | None
) -> InferRequest | tuple[str, int]:
    try:
        return decode_checked(body, model, header_length)
    except ProtocolError as error:  # Its status does not survive pickling as an exception.
        return error.message, error.status


class DecoderUnavailableError(Exception):
    """The large-body decoder process died while decoding: 503, the request may be retried."""


class LargeBodyDecoder:
    """One helper process that decodes large bodies, one at a time, started on first use."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()

    async def decode(
        self, body: bytes, model: Signature, header_length: int | None
    ) -> InferRequest:
        """`decode_checked` of `body` in the helper process; DecoderUnavailableError if it died."""
        signature = _Signature(model.name, list(model.inputs), list(model.outputs))
        async with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            try:
                result = await asyncio.get_running_loop().run_in_executor(
                    self._pool, _decode_in_child, body, signature, header_length
                )
            except BrokenProcessPool:
                # The helper died (killed for memory, say); the next large body gets a new one.
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
                raise DecoderUnavailableError(
                    "the process that decodes large request bodies exited; retry"
                ) from None
        if isinstance(result, tuple):
            raise ProtocolError(result[0], result[1])
        return result

    def close(self) -> None:
        """Stop the helper process, if it was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
