"""gRPC messages become the binary-extension body the HTTP path decodes, and answers come back:
typed contents checked against their datatype, gRPC-only mistakes named, everything else left to
the shared decode (so both protocols refuse with one message)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest

from inferstack.runtime.grpc import status_code
from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb
from inferstack.runtime.grpc.translate import CONTENTS_FIELD, request_body, response_message
from inferstack.runtime.protocol import ProtocolError, decode_checked, encode_response
from inferstack.runtime.tensors import DATATYPE_TO_NUMPY, TensorSpec


@dataclass
class Model:
    name: str = "m"
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=lambda: [TensorSpec("y", "FP32", [-1])])


def decoded(request: pb.ModelInferRequest, *specs: TensorSpec):
    body, header_length = request_body(request)
    return decode_checked(body, Model(inputs=list(specs)), header_length)


def test_raw_input_contents_decode_to_the_same_rows():
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    request = pb.ModelInferRequest(model_name="m", id="r1", raw_input_contents=[rows.tobytes()])
    request.inputs.add(name="x", datatype="FP32", shape=[2, 3])
    result = decoded(request, TensorSpec("x", "FP32", [-1, 3]))
    np.testing.assert_array_equal(result.inputs["x"], rows)
    assert result.batch_size == 2
    assert result.id == "r1"
    assert result.binary_output  # Every output comes back as raw bytes.


TYPED = {
    "BOOL": [True, False],
    "INT8": [-128, 127],
    "INT16": [-32768, 32767],
    "INT32": [-(2**31), 2**31 - 1],
    "INT64": [-(2**63), 2**63 - 1],
    "UINT8": [0, 255],
    "UINT16": [0, 65535],
    "UINT32": [0, 2**32 - 1],
    "UINT64": [0, 2**64 - 1],
    "FP32": [1.5, -2.25],
    "FP64": [1e300, -1e-300],
}


@pytest.mark.parametrize("datatype", sorted(TYPED))
def test_typed_contents_of_every_datatype_decode_to_their_values(datatype):
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[2])
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(TYPED[datatype])
    result = decoded(request, TensorSpec("x", datatype, [-1]))
    expected = np.array(TYPED[datatype], dtype=DATATYPE_TO_NUMPY[datatype])
    np.testing.assert_array_equal(result.inputs["x"], expected)


def test_typed_bytes_contents_decode_as_bytes():
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="s", datatype="BYTES", shape=[2]).contents.bytes_contents.extend(
        [b"ab", b""]
    )
    result = decoded(request, TensorSpec("s", "BYTES", [-1]))
    assert list(result.inputs["s"]) == [b"ab", b""]


@pytest.mark.parametrize(
    ("datatype", "value"), [("INT8", 128), ("UINT16", 70000), ("INT16", -40000)]
)
def test_typed_values_outside_their_datatype_are_refused_naming_the_input(datatype, value):
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[1])
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).append(value)
    with pytest.raises(ProtocolError, match=f"input 'x'.*outside {datatype}"):
        request_body(request)


GRPC_MISTAKES = {
    "the wrong contents field": (
        lambda r: r.inputs.add(name="x", datatype="FP32", shape=[1]).contents.int_contents.append(
            1
        ),
        "carries contents.int_contents; send contents.fp32_contents",
    ),
    "FP16 as typed contents": (
        lambda r: r.inputs.add(name="x", datatype="FP16", shape=[1]).contents.fp32_contents.append(
            1
        ),
        r"\(FP16\) carries contents.fp32_contents; send raw_input_contents",
    ),
    "FP16 with no contents": (
        lambda r: r.inputs.add(name="x", datatype="FP16", shape=[1]),
        "FP16 has no typed contents field; send it in raw_input_contents",
    ),
    "raw contents for fewer inputs than declared": (
        lambda r: (
            r.inputs.add(name="x", datatype="FP32", shape=[1]),
            r.inputs.add(name="z", datatype="FP32", shape=[1]),
            r.raw_input_contents.append(b"\0" * 4),
        ),
        "raw_input_contents has 1 entries for 2 inputs",
    ),
    "raw and typed contents at once": (
        lambda r: (
            r.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1),
            r.raw_input_contents.append(b"\0" * 4),
        ),
        "send every input one way",
    ),
}


@pytest.mark.parametrize("case", sorted(GRPC_MISTAKES))
def test_grpc_only_mistakes_are_named(case):
    build, message = GRPC_MISTAKES[case]
    request = pb.ModelInferRequest(model_name="m")
    build(request)
    with pytest.raises(ProtocolError, match=message):
        request_body(request)


def test_a_shared_memory_input_is_refused():
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype="FP32", shape=[1])
    tensor.parameters["shared_memory_region"].string_param = "region0"
    with pytest.raises(ProtocolError, match="shared memory inputs are not supported"):
        request_body(request)


def test_the_rest_is_refused_by_the_shared_decode_with_its_own_words():
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"\0" * 8])
    request.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    with pytest.raises(ProtocolError, match="bytes") as refused:
        decoded(request, TensorSpec("x", "FP32", [-1, 3]))
    assert "input 'x'" in refused.value.message
    unknown = pb.ModelInferRequest(model_name="m")
    unknown.inputs.add(name="x", datatype="FP17", shape=[1, 3])
    with pytest.raises(ProtocolError, match="datatype 'FP17' but the model expects 'FP32'"):
        decoded(unknown, TensorSpec("x", "FP32", [-1, 3]))


def test_requested_outputs_and_parameters_reach_the_decode():
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"\0" * 4])
    request.inputs.add(name="x", datatype="FP32", shape=[1])
    request.outputs.add(name="y")
    request.parameters["priority"].int64_param = 3
    result = decoded(request, TensorSpec("x", "FP32", [-1]))
    assert [(o.name, o.binary) for o in result.outputs or []] == [("y", True)]
    assert result.parameters["priority"] == 3
    request.outputs[0].parameters["classification"].int64_param = 2
    with pytest.raises(ProtocolError, match="classification extension is not supported"):
        decoded(request, TensorSpec("x", "FP32", [-1]))


def test_a_binary_response_becomes_raw_output_contents():
    outputs = {
        "y": np.arange(4, dtype=np.float32).reshape(2, 2),
        "s": np.array([b"a", b"bc"], dtype=np.object_),
    }
    encoded = encode_response("m", outputs, request_id="r", binary_output=True, model_version="1")
    message = response_message(encoded.body, encoded.header_length)
    assert (message.model_name, message.model_version, message.id) == ("m", "1", "r")
    assert [(o.name, o.datatype, list(o.shape)) for o in message.outputs] == [
        ("y", "FP32", [2, 2]),
        ("s", "BYTES", [2]),
    ]
    assert message.raw_output_contents[0] == outputs["y"].tobytes()
    assert message.raw_output_contents[1] == b"\x01\0\0\0a\x02\0\0\0bc"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, grpc.StatusCode.INVALID_ARGUMENT),
        (404, grpc.StatusCode.NOT_FOUND),
        (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (503, grpc.StatusCode.UNAVAILABLE),
        (500, grpc.StatusCode.INTERNAL),
        (418, grpc.StatusCode.UNKNOWN),
    ],
)
def test_http_statuses_map_to_grpc_codes_as_tritons_do(status, code):
    assert status_code(status) == code
