"""The one decode both request paths use: the HTTP server and the queue worker.

`decode_request` names every problem with the protocol's own error; this adds what a decoder
alone cannot promise: a float that overflows its datatype is refused naming the tensor, an
unexpected exception from the decoder is still the body's fault (a ProtocolError, logged), and
`"outputs": []` means every output, as when `outputs` is absent (Triton does the same).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from typing import Any

import numpy as np

from inferstack.runtime.protocol.codecs import ProtocolError
from inferstack.runtime.protocol.envelopes import InferRequest, decode_request
from inferstack.runtime.tensors import finite_range

log = logging.getLogger(__name__)


class _Beyond(float):
    """A number literal beyond a double's range, read as an infinity but not one."""


def _marked(text: str) -> float:
    value = float(text)
    return _Beyond(value) if math.isinf(value) else value


def _holds_beyond(data: Any) -> bool:
    """Whether nested lists `data` hold a `_Beyond` (iteratively: nesting is the client's)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, _Beyond):
            return True
    return False


def _out_of_range(body: bytes, header_length: int | None, model: Any) -> str:
    """Which FP16/FP32 input of `body` holds a value its datatype cannot represent."""
    specs = {spec.name: spec for spec in model.inputs}
    with contextlib.suppress(Exception):  # Only the message is at stake here.
        header = body if header_length is None else body[:header_length]
        document = json.loads(header, parse_float=_marked)
        for raw in document["inputs"]:
            spec = specs.get(raw.get("name"))
            limit = finite_range(spec.datatype) if spec is not None else None
            if spec is None or limit is None:
                continue
            data = raw.get("data", [])
            values = np.asarray(data, dtype=np.float64).ravel()
            if _holds_beyond(data) or bool((np.abs(values[np.isfinite(values)]) > limit).any()):
                return (
                    f"input {spec.name!r}: values outside the finite {spec.datatype} range "
                    f"(magnitude at most {limit:.8g}); scale the data or send FP64"
                )
    return "a value is outside the finite range of its floating-point datatype"


def decode_checked(body: bytes, model: Any, header_length: int | None) -> InferRequest:
    """`decode_request`, with every failure a ProtocolError and float overflow refused.

    Runs on the event loop or in the decoder process. An exception other than ProtocolError
    from the decoder is still the body's fault (the decoder has no other input), so it becomes
    a 400 too; it is logged, because the decoder should have named the problem itself.
    """
    try:
        # Float overflow raises FloatingPointError where it can happen: in the parser (`double`)
        # and in the narrowing cast of JSON numbers (`codecs._cast`), not around the whole decode
        # (entering numpy's errstate costs as much as decoding a small binary tensor).
        request = decode_request(body, model, header_length=header_length)
    except ProtocolError:
        raise
    except FloatingPointError:
        raise ProtocolError(_out_of_range(body, header_length, model)) from None
    except RecursionError:
        raise ProtocolError(
            "the request nests JSON too deeply; send tensors as flat or shaped lists"
        ) from None
    except Exception as error:
        log.warning("the decoder failed on a request body", exc_info=True)
        raise ProtocolError(
            f"the request body is not a valid v2 inference request "
            f"({type(error).__name__}: {error}); check each field against the model metadata"
        ) from None
    if request.outputs is not None and not request.outputs:
        request.outputs = None  # `"outputs": []` asks for nothing specific: every output.
    return request
