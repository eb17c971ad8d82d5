"""KServe v2 (Open Inference Protocol) envelopes: the inference request and response documents.

Pure functions over bytes, independent of any HTTP server: the server uses them for
`POST /v2/models/{m}/infer`, and the queue worker for message bodies (v2 request JSON in, v2
response JSON out). Both encodings are supported: JSON tensors (`"data": [...]`) and the binary
tensor data extension (a JSON header of `Inference-Header-Content-Length` bytes followed by raw
little-endian tensor bytes, in input order). Each tensor itself goes through `codecs.py`.

Every request is validated against the model's `TensorSpec`s before it reaches a batch, and
every error names the offending input and says what to send instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import numpy as np
import orjson

from inferstack.runtime.protocol.codecs import (
    ProtocolError,
    dumps,
    from_binary,
    from_json,
    loads,
    shown,
    tensor_entries,
)
from inferstack.runtime.tensors import VARIABLE_DIM, TensorSpec

HEADER_LENGTH_HEADER: Final = "inference-header-content-length"
"""HTTP header (lower-case) carrying the JSON header length of a binary-extension body."""
JSON_CONTENT_TYPE: Final = "application/json"
BINARY_CONTENT_TYPE: Final = "application/octet-stream"


class Signature(Protocol):
    """What the codec needs to know about a model (a `LoadedModel` is one)."""

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass(frozen=True)
class RequestedOutput:
    """One entry of the request's `outputs`: which output, and whether to send it as binary."""

    name: str
    binary: bool


@dataclass
class InferRequest:
    """A decoded, validated inference request."""

    inputs: dict[str, np.ndarray]
    """Input tensors by name, in the model's order, each with `batch_size` rows."""
    batch_size: int
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None
    """The outputs asked for, or None for all of them."""
    binary_output: bool = False
    """`parameters.binary_data_output`: the default for outputs not listed explicitly."""


@dataclass(frozen=True)
class EncodedBody:
    """An encoded v2 message: the bytes and, for the binary extension, the JSON header length."""

    body: bytes
    header_length: int | None
    """None for a pure JSON body; else the value of `Inference-Header-Content-Length`."""

    @property
    def content_type(self) -> str:
        """The Content-Type to send with the body."""
        return JSON_CONTENT_TYPE if self.header_length is None else BINARY_CONTENT_TYPE


def decode_request(
    body: bytes, model: Signature, *, header_length: int | None = None
) -> InferRequest:
    """Decode and validate a v2 inference request for `model`.

    `header_length` is the `Inference-Header-Content-Length` header, None when absent (then the
    whole body is JSON). Raises ProtocolError (status 400) naming the problem and the fix.
    """
    if header_length is None:
        header_bytes, binary = body, b""
    else:
        if header_length < 0 or header_length > len(body):
            raise ProtocolError(
                f"Inference-Header-Content-Length is {header_length} but the body has "
                f"{len(body)} bytes; send the byte length of the JSON header"
            )
        if header_length == 0:
            return _decode_raw_binary(body, model)
        header_bytes, binary = body[:header_length], body[header_length:]
    try:
        document = loads(header_bytes)
    except ValueError as error:
        raise ProtocolError(
            f"the request body is not valid JSON ({error}); send a v2 inference request "
            '{"inputs": [{"name", "shape", "datatype", "data"}]}'
        ) from None
    if not isinstance(document, dict):
        raise ProtocolError("the request body must be a JSON object with an 'inputs' list")
    return _decode_document(document, binary, model)


def _decode_document(document: dict[str, Any], binary: bytes, model: Signature) -> InferRequest:
    raw_inputs, parameters, request_id = _envelope(document, model)
    specs = {spec.name: spec for spec in model.inputs}
    decoded: dict[str, np.ndarray] = {}
    offset = 0
    for index, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict):
            raise ProtocolError(f"inputs[{index}] must be an object with name, shape, datatype")
        name = raw.get("name")
        spec = specs.get(name) if isinstance(name, str) else None
        if spec is None:
            raise ProtocolError(
                f"inputs[{index}].name {shown(name)} is not an input of model {model.name!r}; "
                f"its inputs are {_describe(model.inputs)}"
            )
        if spec.name in decoded:
            raise ProtocolError(f"input {spec.name!r} appears twice; send each input once")
        decoded[spec.name], offset = _decode_input(spec, raw, binary, offset)
    batch_size = _batch_size(decoded, len(binary) - offset, model)
    return InferRequest(
        inputs={spec.name: decoded[spec.name] for spec in model.inputs},
        batch_size=batch_size,
        id=request_id,
        parameters=parameters,
        outputs=_requested_outputs(document.get("outputs"), model),
        binary_output=_flag(parameters, "binary_data_output", "parameters"),
    )


def _envelope(
    document: dict[str, Any], model: Signature
) -> tuple[list[Any], dict[str, Any], str | None]:
    """The request's `inputs` list, its `parameters` and its `id`, each checked for its type."""
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError(
            f"'inputs' must be a non-empty list; model {model.name!r} takes "
            f"{_describe(model.inputs)}"
        )
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not _is_text(request_id):
        raise ProtocolError("'id' must be a string of valid Unicode text (it is echoed back)")
    return raw_inputs, parameters, request_id


def _decode_input(
    spec: TensorSpec, raw: dict[str, Any], binary: bytes, offset: int
) -> tuple[np.ndarray, int]:
    """One input entry as an array, from its JSON data or from `binary` at `offset`; the offset
    of the next binary input."""
    shape = _check_shape(spec, raw.get("shape"))
    _check_datatype(spec, raw.get("datatype"))
    input_parameters = raw.get("parameters") or {}
    if not isinstance(input_parameters, dict):
        raise ProtocolError(f"input {spec.name!r}: 'parameters' must be a JSON object")
    size = input_parameters.get("binary_data_size")
    if size is None:
        if "data" not in raw:
            raise ProtocolError(
                f"input {spec.name!r} has no 'data' and no parameters.binary_data_size; "
                "send the tensor as JSON data or as binary"
            )
        return from_json(spec, shape, raw["data"]), offset
    if "data" in raw:
        raise ProtocolError(
            f"input {spec.name!r} has both 'data' and parameters.binary_data_size; "
            "send the tensor one way"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError(f"input {spec.name!r}: binary_data_size must be a non-negative integer")
    if offset + size > len(binary):
        raise ProtocolError(
            f"input {spec.name!r} declares binary_data_size {size} but only "
            f"{len(binary) - offset} bytes of tensor data follow the JSON header; check "
            "Inference-Header-Content-Length and the sizes"
        )
    return from_binary(spec, shape, binary[offset : offset + size]), offset + size


def _batch_size(decoded: dict[str, np.ndarray], trailing: int, model: Signature) -> int:
    """The rows every input carries, once no binary bytes are left over and no input missing."""
    if trailing:
        raise ProtocolError(
            f"{trailing} bytes follow the JSON header beyond the declared "
            "binary_data_size values; check Inference-Header-Content-Length"
        )
    # `decoded` holds only the model's inputs, each once: as many of them means none missing.
    if len(decoded) != len(model.inputs):
        missing = [spec.name for spec in model.inputs if spec.name not in decoded]
        raise ProtocolError(
            f"missing inputs {missing}; model {model.name!r} takes {_describe(model.inputs)}"
        )
    arrays = iter(decoded.values())
    batch = next(arrays).shape[0]
    if any(array.shape[0] != batch for array in arrays):
        rows = {name: array.shape[0] for name, array in decoded.items()}
        raise ProtocolError(
            f"inputs disagree on the batch dimension {rows}; send the same number of rows "
            "in every input"
        )
    return int(batch)


def _decode_raw_binary(body: bytes, model: Signature) -> InferRequest:
    """Header length 0: the whole body is the one input's tensor (a batch of whole rows)."""
    if len(model.inputs) != 1:
        raise ProtocolError(
            "a raw binary body (Inference-Header-Content-Length: 0) is only for single-input "
            f"models; model {model.name!r} has {len(model.inputs)} inputs: send a JSON header"
        )
    spec = model.inputs[0]
    if spec.datatype == "BYTES" or VARIABLE_DIM in spec.shape[1:]:
        raise ProtocolError(
            f"input {spec.name!r} has a variable shape or BYTES type, so a raw body cannot say "
            "its shape; send a JSON header with the shape"
        )
    row_bytes = math.prod(spec.shape[1:]) * spec.dtype.itemsize
    if not body or len(body) % row_bytes:
        raise ProtocolError(
            f"a raw body for input {spec.name!r} must be a whole number of {row_bytes}-byte "
            f"rows, got {len(body)} bytes"
        )
    shape = (len(body) // row_bytes, *spec.shape[1:])
    array = from_binary(spec, shape, body)
    return InferRequest(inputs={spec.name: array}, batch_size=shape[0])


def _is_text(value: object) -> bool:
    """A str that can be written back as UTF-8 (the permissive JSON parser lets lone UTF-16
    surrogates through, which no response could then carry)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _describe(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(f"{s.name} ({s.datatype} {list(s.shape)})" for s in specs)


def _check_shape(spec: TensorSpec, shape: object) -> tuple[int, ...]:
    # `type(...) is int`: JSON parsers give only int or bool here, and bool is refused. One pass
    # per check: this runs for every input of every request.
    if not isinstance(shape, list) or not _non_negative_ints(shape):
        raise ProtocolError(
            f"input {spec.name!r}: 'shape' must be a list of non-negative integers, "
            f"e.g. {[1 if d == VARIABLE_DIM else d for d in spec.shape]}"
        )
    expected = spec.shape
    matches = len(shape) == len(expected)
    if matches:
        for want, got in zip(expected, shape, strict=True):
            if want != VARIABLE_DIM and want != got:
                matches = False
                break
    if not matches:
        raise ProtocolError(
            f"input {spec.name!r} has shape {shape} but the model expects {list(expected)} "
            "(-1 is any size; the first dimension is the batch)"
        )
    if shape[0] < 1:
        raise ProtocolError(f"input {spec.name!r}: the batch dimension must be at least 1")
    return tuple(shape)


def _non_negative_ints(values: list[Any]) -> bool:
    # A loop, not all() over a generator (ruff's SIM110): a third less for a shape's few dims.
    for value in values:  # noqa: SIM110
        if type(value) is not int or value < 0:
            return False
    return True


def _check_datatype(spec: TensorSpec, datatype: object) -> None:
    if datatype != spec.datatype:
        raise ProtocolError(
            f"input {spec.name!r} has datatype {shown(datatype)} but the model expects "
            f"{spec.datatype!r}; send {spec.datatype}"
        )


def _flag(parameters: Mapping[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"{where}.{key} must be true or false")
    return value


def _requested_outputs(raw: object, model: Signature) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ProtocolError("'outputs' must be a list of {name, parameters} objects")
    known = {spec.name for spec in model.outputs}
    requested: list[RequestedOutput] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in known:
            raise ProtocolError(
                f"outputs[{index}].name {shown(name)} is not an output of model {model.name!r}; "
                f"its outputs are {_describe(model.outputs)}"
            )
        parameters = item.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ProtocolError(f"outputs[{index}].parameters must be a JSON object")
        if "classification" in parameters:
            raise ProtocolError(
                f"outputs[{index}]: the classification extension is not supported; "
                "request the raw output and take the top classes client-side"
            )
        requested.append(
            RequestedOutput(
                str(name), _flag(parameters, "binary_data", f"outputs[{index}].parameters")
            )
        )
    return requested


def encode_response(
    model_name: str,
    outputs: Mapping[str, np.ndarray],
    *,
    request_id: str | None = None,
    requested: Sequence[RequestedOutput] | None = None,
    binary_output: bool = False,
    model_version: str | None = None,
) -> EncodedBody:
    """Encode a v2 inference response.

    `requested` (the request's `outputs`) selects outputs and their encoding; when None every
    output is sent, as binary when `binary_output` is set.
    """
    selected = (
        [(name, binary_output) for name in outputs]
        if requested is None
        else [(item.name, item.binary) for item in requested]
    )
    entries, chunks, finite = tensor_entries(
        (name, outputs[name], binary) for name, binary in selected
    )
    document: dict[str, Any] = {"model_name": model_name, "outputs": entries}
    if model_version is not None:
        document["model_version"] = model_version
    if request_id is not None:
        document["id"] = request_id
    header = dumps(document, finite)
    if not chunks:
        return EncodedBody(header, None)
    return EncodedBody(header + b"".join(chunks), len(header))


def error_body(message: str) -> bytes:
    """The v2 error document `{"error": message}`."""
    return orjson.dumps({"error": message})
