"""KServe v2 gRPC messages to and from the v2 binary-extension body the HTTP path decodes.

A `ModelInferRequest` becomes exactly what a binary-extension HTTP request carries: a JSON header
(`id`, `parameters`, `inputs` with `binary_data_size`, `outputs`) followed by each input's raw
little-endian bytes in input order. The server then judges it with the HTTP path's own decode
(`protocol.decode_checked`, through `InferenceApp`), so both protocols accept and refuse the same
requests with the same messages, and the response comes back as a binary-extension body that
`response_message` turns into a `ModelInferResponse` with `raw_output_contents` (what Triton
answers and `tritonclient.grpc` reads). `raw_input_contents` pass through as they are; typed
`contents` are packed into the same bytes here, each checked against its datatype's range.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
import orjson

from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb
from inferstack.runtime.protocol import ProtocolError
from inferstack.runtime.tensors import DATATYPE_TO_NUMPY

CONTENTS_FIELD: Final[Mapping[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The `InferTensorContents` field of each datatype (the proto's comments); FP16 has none."""
_ALL_FIELDS: Final = tuple(sorted(set(CONTENTS_FIELD.values())))


def request_body(request: pb.ModelInferRequest) -> tuple[bytes, int]:
    """The binary-extension body of `request` and its JSON header length.

    Raises ProtocolError for what only the gRPC form can get wrong (raw and typed contents
    mixed, a count of raw_input_contents that is not one per input, typed values outside their
    datatype); everything else is left to the shared decode, which names it.
    """
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "send one entry per input, in input order"
        )
    entries: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for index, tensor in enumerate(request.inputs):
        data = raw[index] if raw else _packed(tensor)
        if raw and _has_contents(tensor):
            raise ProtocolError(
                f"input {tensor.name!r} has typed contents and raw_input_contents is set; "
                "send every input one way"
            )
        if "shared_memory_region" in tensor.parameters:
            raise ProtocolError(
                f"input {tensor.name!r}: shared memory inputs are not supported; send the "
                "tensor in raw_input_contents"
            )
        entries.append(
            {
                "name": tensor.name,
                "shape": list(tensor.shape),
                "datatype": tensor.datatype,
                "parameters": {"binary_data_size": len(data)},
            }
        )
        chunks.append(data)
    document: dict[str, Any] = {"inputs": entries}
    if request.id:
        document["id"] = request.id
    parameters = {key: parameter_value(value) for key, value in request.parameters.items()}
    # Every output comes back as bytes: raw_output_contents, as Triton answers.
    parameters["binary_data_output"] = True
    document["parameters"] = parameters
    if request.outputs:
        document["outputs"] = [_output(item) for item in request.outputs]
    header = orjson.dumps(document)
    return header + b"".join(chunks), len(header)


def parameter_value(parameter: pb.InferParameter) -> bool | int | float | str | None:
    """The JSON value of one `InferParameter` (None when no member of its oneof is set)."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _output(item: pb.ModelInferRequest.InferRequestedOutputTensor) -> dict[str, Any]:
    parameters: dict[str, Any] = {"binary_data": True}
    if "classification" in item.parameters:  # The shared decode refuses it by name.
        parameters["classification"] = parameter_value(item.parameters["classification"])
    return {"name": item.name, "parameters": parameters}


def _has_contents(tensor: pb.ModelInferRequest.InferInputTensor) -> bool:
    return tensor.HasField("contents") and any(
        len(getattr(tensor.contents, name)) for name in _ALL_FIELDS
    )


def _packed(tensor: pb.ModelInferRequest.InferInputTensor) -> bytes:
    """The raw bytes of one input's typed `contents`."""
    field = CONTENTS_FIELD.get(tensor.datatype)
    stray = [name for name in _ALL_FIELDS if name != field and len(getattr(tensor.contents, name))]
    if stray:
        wanted = f"contents.{field}" if field else "raw_input_contents"
        raise ProtocolError(
            f"input {tensor.name!r} ({tensor.datatype}) carries contents.{stray[0]}; send {wanted}"
        )
    if field is None:
        if tensor.datatype in DATATYPE_TO_NUMPY:  # FP16: the protocol has no typed field.
            raise ProtocolError(
                f"input {tensor.name!r}: {tensor.datatype} has no typed contents field; "
                "send it in raw_input_contents"
            )
        return b""  # An unknown datatype: the shared decode names it against the model's.
    values = getattr(tensor.contents, field)
    if tensor.datatype == "BYTES":
        return b"".join(struct.pack("<I", len(item)) + item for item in values)
    dtype = DATATYPE_TO_NUMPY[tensor.datatype]
    if dtype.kind in "iu" and len(values):
        wide = np.asarray(values, dtype=np.int64 if dtype.kind == "i" else np.uint64)
        info = np.iinfo(dtype.name)
        if wide.min() < info.min or wide.max() > info.max:
            raise ProtocolError(
                f"input {tensor.name!r}: contents.{field} holds values outside {tensor.datatype} "
                f"([{info.min}, {info.max}]); send values in range or a wider datatype"
            )
        return wide.astype(dtype.newbyteorder("<")).tobytes()
    return np.asarray(values, dtype=dtype.newbyteorder("<")).tobytes()


def response_message(body: bytes, header_length: int | None) -> pb.ModelInferResponse:
    """The `ModelInferResponse` of a binary-extension response body (every output binary)."""
    header = orjson.loads(body if header_length is None else body[:header_length])
    response = pb.ModelInferResponse(
        model_name=header["model_name"],
        model_version=header.get("model_version", ""),
        id=header.get("id", ""),
    )
    offset = len(body) if header_length is None else header_length
    raw: list[bytes] = []
    for entry in header["outputs"]:
        size = entry["parameters"]["binary_data_size"]
        response.outputs.add(name=entry["name"], datatype=entry["datatype"], shape=entry["shape"])
        raw.append(body[offset : offset + size])
        offset += size
    response.raw_output_contents.extend(raw)
    return response


def metadata_message(
    name: str, version: str, platform: str, inputs: Iterable[Any], outputs: Iterable[Any]
) -> pb.ModelMetadataResponse:
    """A `ModelMetadataResponse` from `TensorSpec`s (shape with -1 for variable dimensions)."""

    def tensors(specs: Iterable[Any]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(
                name=spec.name, datatype=spec.datatype, shape=list(spec.shape)
            )
            for spec in specs
        ]

    return pb.ModelMetadataResponse(
        name=name,
        versions=[version],
        platform=platform,
        inputs=tensors(inputs),
        outputs=tensors(outputs),
    )
