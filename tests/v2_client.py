"""The client half of the KServe v2 protocol, for tests and benchmarks: encode a request, decode
a response. The runtime only decodes requests and encodes responses (`inferstack.runtime.protocol`);
this side uses the same tensor codecs so that both ends agree by construction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from inferstack.runtime.protocol import EncodedBody, ProtocolError
from inferstack.runtime.protocol.codecs import (
    dumps,
    from_binary,
    from_json,
    loads,
    tensor_entries,
)
from inferstack.runtime.tensors import VARIABLE_DIM, TensorSpec


def encode_request(
    inputs: Mapping[str, np.ndarray],
    *,
    binary: bool = False,
    request_id: str | None = None,
    binary_output: bool = False,
) -> EncodedBody:
    """Encode a v2 inference request."""
    entries, chunks, finite = tensor_entries(
        (name, array, binary) for name, array in inputs.items()
    )
    document: dict[str, Any] = {"inputs": entries}
    if request_id is not None:
        document["id"] = request_id
    if binary_output:
        document["parameters"] = {"binary_data_output": True}
    header = dumps(document, finite)
    if not chunks:
        return EncodedBody(header, None)
    return EncodedBody(header + b"".join(chunks), len(header))


def decode_response(body: bytes, *, header_length: int | None = None) -> dict[str, np.ndarray]:
    """Decode the outputs of a v2 inference response (JSON or binary) into numpy arrays."""
    header, binary = (
        (body, b"") if header_length is None else (body[:header_length], body[header_length:])
    )
    document = loads(header)
    if "error" in document:
        raise ProtocolError(str(document["error"]))
    result: dict[str, np.ndarray] = {}
    offset = 0
    for entry in document["outputs"]:
        spec = TensorSpec("response", entry["datatype"], [VARIABLE_DIM, *entry["shape"][1:]])
        shape = tuple(entry["shape"])
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is None:
            result[entry["name"]] = from_json(spec, shape, entry["data"])
        else:
            result[entry["name"]] = from_binary(spec, shape, binary[offset : offset + size])
            offset += size
    return result
