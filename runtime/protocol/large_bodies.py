"""Large request bodies decoded, and large responses encoded, in helper processes, so the event
loop keeps answering.

The JSON decoder holds the GIL for the whole parse, so a thread would still stall the event loop
(health checks, admission of other requests) for as long as a large body takes. Bodies from
`LARGE_BODY_BYTES` on therefore go to one spawned helper process, one body at a time, which also
bounds the decode's memory (a JSON body takes many times its size as Python objects) to one
body's worth however many arrive together. A helper that dies (killed for memory, say) fails
only the body it was decoding; the next one starts a new helper.

Responses are the same in reverse: orjson writes a 128 x 512 FP32 output as 715 KB of JSON in
about 10 ms with the GIL held throughout, so outputs of `LARGE_RESPONSE_BYTES` on written as
JSON are encoded by a second helper process (a second one, so that encodes never wait behind
decodes); the server only pickles the arrays there and the bytes back, a memory copy each.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Final

import numpy as np

from inferstack.runtime.protocol import (
    EncodedBody,
    InferRequest,
    ProtocolError,
    RequestedOutput,
    Signature,
    decode_checked,
    encode_response,
)
from inferstack.runtime.tensors import TensorSpec

LARGE_BODY_BYTES: Final = 256 * 1024
"""Bodies from this size on are decoded in the helper process, off the event loop (a 256 KiB
JSON body parses in about 10 ms on this machine's cores; 64 MiB took 2.6 s)."""
LARGE_RESPONSE_BYTES: Final = 64 * 1024
"""Outputs with this many bytes of array data or more, written as JSON (not the binary
extension, which is a memory copy), are encoded in the helper process: about 3 ms of orjson."""


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


def _encode_in_child(
    model_name: str,
    outputs: dict[str, np.ndarray],
    request_id: str | None,
    requested: list[RequestedOutput] | None,
    binary_output: bool,
    model_version: str | None,
) -> EncodedBody:
    return encode_response(
        model_name,
        outputs,
        request_id=request_id,
        requested=requested,
        binary_output=binary_output,
        model_version=model_version,
    )


class DecoderUnavailableError(Exception):
    """The large-body decoder (or encoder) process died while working: 503, the request may be
    retried."""


def json_bytes(
    outputs: Mapping[str, np.ndarray],
    requested: Sequence[RequestedOutput] | None,
    binary_output: bool,
) -> int:
    """Bytes of array data a response writes as JSON (what encoding it costs)."""
    if requested is None:
        return 0 if binary_output else sum(array.nbytes for array in outputs.values())
    return sum(
        outputs[item.name].nbytes for item in requested if not item.binary and item.name in outputs
    )


class LargeBodyDecoder:
    """One helper process that decodes large bodies, one at a time, started on first use."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._encoder: ProcessPoolExecutor | None = None
        self._encoding = asyncio.Lock()

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

    async def encode(
        self,
        model_name: str,
        outputs: Mapping[str, np.ndarray],
        *,
        request_id: str | None,
        requested: Sequence[RequestedOutput] | None,
        binary_output: bool,
        model_version: str | None,
    ) -> EncodedBody:
        """`encode_response` in the encoder process; DecoderUnavailableError if it died.

        A ValueError of the encoder (an output v2 cannot carry) reaches the caller as such.
        """
        async with self._encoding:
            if self._encoder is None:
                self._encoder = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._encoder,
                    _encode_in_child,
                    model_name,
                    dict(outputs),
                    request_id,
                    None if requested is None else list(requested),
                    binary_output,
                    model_version,
                )
            except BrokenProcessPool:
                self._encoder.shutdown(wait=False, cancel_futures=True)
                self._encoder = None
                raise DecoderUnavailableError(
                    "the process that encodes large responses exited; retry"
                ) from None

    def close(self) -> None:
        """Stop the helper processes, if they were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._encoder is not None:
            self._encoder.shutdown(wait=True, cancel_futures=True)
            self._encoder = None
