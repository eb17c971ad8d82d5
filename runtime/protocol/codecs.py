"""KServe v2 tensor codecs: one tensor to and from its JSON `data` or its binary bytes.

The pieces below know nothing of requests or responses (that is `envelopes.py`): they turn one
tensor entry's JSON data, or its slice of a binary-extension body, into a numpy array of the
spec's dtype and shape, and back. Every refusal is a `ProtocolError` that names the tensor and
says what to send instead.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from typing import Any, cast

import numpy as np
import orjson

from inferstack.runtime.tensors import TensorSpec, datatype_of


class ProtocolError(Exception):
    """A request that breaks the protocol or the model's signature: a 4xx with a fix."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def shown(value: object, limit: int = 80) -> str:
    """A client's JSON value as an error message may quote it: scalars and short strings as
    they are, longer strings cut, arrays and objects as `[...]` and `{...}` (their repr can be
    huge, and deeply nested ones exhaust the stack)."""
    if isinstance(value, str):
        text = repr(value[:limit])
        return text if len(value) <= limit else f"{text}... ({len(value)} characters)"
    if value is None or isinstance(value, bool | int | float):
        text = repr(value)
        return text if len(text) <= limit else f"a {len(text)}-digit number"
    return "[...]" if isinstance(value, list) else "{...}"


def double(text: str) -> float:
    """A JSON number literal as a double; FloatingPointError when it is beyond a double's range.

    Python reads `1e400` as an infinity, which the range checks would take for a literal
    `Infinity` (allowed): the value must be refused like any other overflow instead.
    """
    value = float(text)
    if math.isinf(value):
        raise FloatingPointError(f"the number {text[:40]} is beyond the range of a double")
    return value


def loads(data: bytes) -> Any:
    """Parse JSON; NaN, Infinity and -Infinity are accepted as Triton accepts them.

    perf_analyzer's random FP32 data contains them and Triton's parser allows them, so the
    strict (and fast) parser is tried first and the permissive one only when it refuses.
    Raises ValueError for anything that is not JSON, nesting too deep for the parsers included,
    and FloatingPointError for a number beyond a double's range (`double`), so that the
    caller refuses it as the overflow it is.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(data, parse_float=double)
    except RecursionError:
        # orjson stops at 1024 levels; the permissive parser would exhaust the stack instead.
        raise ValueError("arrays or objects nested more than 1024 levels deep") from None


def dumps(document: Any, arrays_finite: bool) -> bytes:
    """Serialise a v2 document; non-finite floats are written as NaN/Infinity, not null."""
    if arrays_finite:
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(document, default=_jsonable, separators=(",", ":")).encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite(array: np.ndarray) -> bool:
    """Whether an array holds no NaN or infinity (only a float array can)."""
    if array.dtype.kind != "f":
        return True
    # The sum of squares is NaN or infinite when any value is, and one dot product costs half of
    # isfinite(...).all() on a 512-float row. It is also infinite for finite values whose squares
    # overflow the type (beyond 256 in FP16): isfinite decides those.
    return math.isfinite(np.vdot(array, array)) or bool(np.isfinite(array).all())


def tensor_entries(
    tensors: Iterable[tuple[str, np.ndarray, bool]],
) -> tuple[list[dict[str, Any]], list[bytes], bool]:
    """v2 tensor entries for (name, array, as binary) triples, the binary chunks in order, and
    whether every JSON-encoded array is finite (which decides the JSON serialiser)."""
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    finite = True
    for name, array, binary in tensors:
        datatype = datatype_of(array)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            chunk = to_binary(array, datatype)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            entry["data"] = to_json_data(array, datatype)
            finite = finite and _finite(array)
        entries.append(entry)
    return entries, chunks, finite


def from_binary(spec: TensorSpec, shape: tuple[int, ...], data: bytes) -> np.ndarray:
    """The tensor in `data` (little-endian, or length-prefixed BYTES elements)."""
    count = math.prod(shape)
    if spec.datatype == "BYTES":
        elements = _split_bytes(spec, data)
        if len(elements) != count:
            raise ProtocolError(
                f"input {spec.name!r}: shape {list(shape)} needs {count} elements but the "
                f"binary data holds {len(elements)}"
            )
        return np.array(elements, dtype=np.object_).reshape(shape)
    dtype = spec.dtype.newbyteorder("<")
    if len(data) != count * dtype.itemsize:
        raise ProtocolError(
            f"input {spec.name!r}: shape {list(shape)} of {spec.datatype} needs "
            f"{count * dtype.itemsize} bytes but binary_data_size is {len(data)}"
        )
    # A copy: the batcher concatenates anyway, and a view would pin the whole request body.
    return np.frombuffer(data, dtype=dtype).astype(spec.dtype).reshape(shape)


def _split_bytes(spec: TensorSpec, data: bytes) -> list[bytes]:
    elements: list[bytes] = []
    position = 0
    while position < len(data):
        if position + 4 > len(data):
            raise ProtocolError(
                f"input {spec.name!r}: BYTES element at byte {position} lacks its 4-byte "
                "length prefix"
            )
        (length,) = struct.unpack_from("<I", data, position)
        position += 4
        if position + length > len(data):
            raise ProtocolError(
                f"input {spec.name!r}: BYTES element at byte {position} claims {length} bytes "
                "past the end of the data"
            )
        elements.append(data[position : position + length])
        position += length
    return elements


def from_json(spec: TensorSpec, shape: tuple[int, ...], data: object) -> np.ndarray:
    """The tensor in a JSON `data` array (flat or nested), cast to the spec's dtype."""
    count = math.prod(shape)
    if not isinstance(data, list):
        raise ProtocolError(f"input {spec.name!r}: 'data' must be a JSON array (flat or nested)")
    if spec.datatype == "BYTES":
        flat = _flatten(data)
        if not all(isinstance(item, str) for item in flat):
            raise ProtocolError(f"input {spec.name!r}: BYTES data must be strings")
        try:
            array = np.array([item.encode() for item in flat], dtype=np.object_)
        except UnicodeEncodeError:
            raise ProtocolError(
                f"input {spec.name!r}: BYTES data holds a lone UTF-16 surrogate (\\uD800 to "
                "\\uDFFF without its pair); send valid Unicode text"
            ) from None
    else:
        try:
            array = np.asarray(data)
        except ValueError:
            raise ProtocolError(
                f"input {spec.name!r}: 'data' is a ragged nested array; send a flat list of "
                f"{count} values or a nested list of shape {list(shape)}"
            ) from None
        array = _cast(spec, array)
    if array.size != count:
        raise ProtocolError(
            f"input {spec.name!r}: shape {list(shape)} needs {count} values but 'data' has "
            f"{array.size}"
        )
    return array.reshape(shape)


def _cast(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """Cast decoded JSON numbers to the spec's dtype, refusing lossy or nonsensical casts."""
    target = spec.dtype
    kind = array.dtype.kind
    if array.size == 0:
        return array.astype(target)
    if target.kind == "b":
        if kind != "b":
            raise ProtocolError(f"input {spec.name!r}: BOOL data must be true/false")
    elif kind not in "biuf":
        raise ProtocolError(
            f"input {spec.name!r}: {spec.datatype} data must be numbers, got {array.dtype.kind!r} "
            "elements (strings or objects)"
        )
    elif target.kind in "iu":
        if kind == "f":
            raise ProtocolError(
                f"input {spec.name!r}: {spec.datatype} data must be integers, got fractions"
            )
        info = np.iinfo(cast(Any, target))
        if array.min() < info.min or array.max() > info.max:
            raise ProtocolError(
                f"input {spec.name!r}: values outside the {spec.datatype} range "
                f"[{info.min}, {info.max}]"
            )
    if target.kind == "f" and target.itemsize < 8:
        # FP16/FP32 from JSON's doubles: a value beyond the narrower range must be refused
        # (decode_checked names the tensor), not become an infinity.
        with np.errstate(over="raise"):
            return array.astype(target, copy=False)
    return array.astype(target, copy=False)


def _flatten(data: list[Any]) -> list[Any]:
    """The leaves of a nested list in order; iterative, so no nesting depth exhausts the stack."""
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def to_binary(array: np.ndarray, datatype: str) -> bytes:
    """The binary-extension bytes of `array`: little-endian, BYTES elements length-prefixed."""
    if datatype == "BYTES":
        parts: list[bytes] = []
        for item in array.reshape(-1):
            raw = item if isinstance(item, bytes) else str(item).encode()
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def to_json_data(array: np.ndarray, datatype: str) -> Any:
    """The JSON `data` of `array`, flat (BYTES as text)."""
    if datatype == "BYTES":
        return [
            item.decode(errors="replace") if isinstance(item, bytes) else str(item)
            for item in array.reshape(-1)
        ]
    # orjson writes numpy arrays natively (OPT_SERIALIZE_NUMPY) without a Python list per value.
    return np.ascontiguousarray(array.reshape(-1))
