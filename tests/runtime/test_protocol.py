"""The KServe v2 codec: both encodings round-trip, and every bad request says what to fix."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import orjson
import pytest

from inferstack.runtime.protocol import (
    ProtocolError,
    RequestedOutput,
    decode_request,
    encode_response,
)
from inferstack.runtime.tensors import TensorSpec
from tests.v2_client import decode_response, encode_request


@dataclass
class Model:
    name: str = "mlp"
    inputs: list[TensorSpec] = field(default_factory=lambda: [TensorSpec("input", "FP32", [-1, 4])])
    outputs: list[TensorSpec] = field(
        default_factory=lambda: [
            TensorSpec("output", "FP32", [-1, 4]),
            TensorSpec("label", "INT64", [-1]),
        ]
    )


MLP = Model()
X = np.arange(8, dtype=np.float32).reshape(2, 4) / 3


def body(*inputs: dict[str, object], **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


def entry(**overrides: object) -> dict[str, object]:
    return {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": X.ravel().tolist()} | (
        overrides
    )


@pytest.mark.parametrize("binary", [False, True])
def test_request_round_trips_exactly(binary):
    encoded = encode_request({"input": X}, binary=binary, request_id="r-1")
    assert (encoded.header_length is not None) is binary
    request = decode_request(encoded.body, MLP, header_length=encoded.header_length)
    np.testing.assert_array_equal(request.inputs["input"], X)
    assert request.inputs["input"].dtype == np.float32
    assert request.batch_size == 2
    assert request.id == "r-1"


def test_nested_json_data_is_accepted():
    request = decode_request(body(entry(data=X.tolist())), MLP)
    np.testing.assert_array_equal(request.inputs["input"], X)


def test_raw_binary_body_with_zero_header_length():
    request = decode_request(X.tobytes(), MLP, header_length=0)
    np.testing.assert_array_equal(request.inputs["input"], X)


@pytest.mark.parametrize("binary", [False, True])
def test_response_round_trips_exactly(binary):
    outputs = {"output": X, "label": np.array([3, 1], dtype=np.int64)}
    encoded = encode_response("mlp", outputs, request_id="r-1", binary_output=binary)
    document = orjson.loads(encoded.body[: encoded.header_length])
    assert document["model_name"] == "mlp"
    assert document["id"] == "r-1"
    decoded = decode_response(encoded.body, header_length=encoded.header_length)
    np.testing.assert_array_equal(decoded["output"], X)
    np.testing.assert_array_equal(decoded["label"], [3, 1])


def test_requested_outputs_select_and_choose_the_encoding_per_output():
    request = decode_request(
        body(entry(), outputs=[{"name": "label", "parameters": {"binary_data": True}}]), MLP
    )
    assert request.outputs == [RequestedOutput("label", True)]
    outputs = {"output": X, "label": np.array([3, 1], dtype=np.int64)}
    encoded = encode_response("mlp", outputs, requested=request.outputs)
    header = orjson.loads(encoded.body[: encoded.header_length])
    assert [item["name"] for item in header["outputs"]] == ["label"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 16}
    assert encoded.body[encoded.header_length :] == np.array([3, 1], dtype="<i8").tobytes()


def test_bytes_tensors_round_trip_in_both_encodings():
    model = Model(inputs=[TensorSpec("text", "BYTES", [-1])])
    values = np.array([b"hello", b"", "h\u00e9".encode()], dtype=np.object_)
    for binary in (False, True):
        encoded = encode_request({"text": values}, binary=binary)
        request = decode_request(encoded.body, model, header_length=encoded.header_length)
        assert request.inputs["text"].tolist() == values.tolist()
    raw = b"".join(struct.pack("<I", len(v)) + v for v in values)
    assert encode_request({"text": values}, binary=True).body.endswith(raw)


@pytest.mark.parametrize(
    ("payload", "header_length", "message"),
    [
        (b"{not json", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (body(), None, r"'inputs' must be a non-empty list; model 'mlp' takes input \(FP32"),
        (body(entry(name="pixels")), None, "'pixels' is not an input of model 'mlp'; its inputs"),
        (body(entry(), entry()), None, "appears twice"),
        (body(entry(datatype="FP64")), None, "datatype 'FP64' but the model expects 'FP32'"),
        (body(entry(shape=[2, 5])), None, r"shape \[2, 5\] but the model expects \[-1, 4\]"),
        (body(entry(shape=[8])), None, r"shape \[8\] but the model expects"),
        (body(entry(shape=[0, 4], data=[])), None, "batch dimension must be at least 1"),
        (body(entry(shape=[2, "4"])), None, "'shape' must be a list of non-negative integers"),
        (body(entry(data=[1.0] * 7)), None, "needs 8 values but 'data' has 7"),
        (body(entry(data=["a"] * 8)), None, "FP32 data must be numbers"),
        (body(entry(data=[[1.0, 2.0], [3.0]])), None, "ragged"),
        (body(entry(data=3.0)), None, "'data' must be a JSON array"),
        (body({"name": "input", "datatype": "FP32", "shape": [2, 4]}), None, "no 'data'"),
        (body(entry(), outputs=[{"name": "logits"}]), None, "'logits' is not an output"),
        (
            body(entry(), outputs=[{"name": "output", "parameters": {"classification": 3}}]),
            None,
            "classification extension is not supported",
        ),
        (body(entry(), parameters={"binary_data_output": "yes"}), None, "must be true or false"),
        (b"{}", 10, "Inference-Header-Content-Length is 10 but the body has 2 bytes"),
    ],
)
def test_bad_requests_name_the_problem_and_the_fix(payload, header_length, message):
    with pytest.raises(ProtocolError, match=message) as caught:
        decode_request(payload, MLP, header_length=header_length)
    assert caught.value.status == 400


def test_integer_inputs_refuse_fractions_and_overflow():
    model = Model(inputs=[TensorSpec("ids", "INT8", [-1])])

    def ids(data: list[object]) -> bytes:
        return body({"name": "ids", "datatype": "INT8", "shape": [len(data)], "data": data})

    assert decode_request(ids([1, -2]), model).inputs["ids"].dtype == np.int8
    with pytest.raises(ProtocolError, match="INT8 data must be integers"):
        decode_request(ids([1.5]), model)
    with pytest.raises(ProtocolError, match=r"outside the INT8 range \[-128, 127\]"):
        decode_request(ids([300]), model)


def test_binary_sizes_must_match_the_shape_and_the_body():
    header = orjson.dumps(
        {"inputs": [entry(data=None) | {"parameters": {"binary_data_size": 32}}]}
    ).replace(b',"data":null', b"")
    good = header + X.tobytes()
    assert decode_request(good, MLP, header_length=len(header)).batch_size == 2
    with pytest.raises(ProtocolError, match="only 16 bytes of tensor data follow"):
        decode_request(header + X.tobytes()[:16], MLP, header_length=len(header))
    with pytest.raises(ProtocolError, match="4 bytes follow the JSON header beyond"):
        decode_request(good + b"\0" * 4, MLP, header_length=len(header))


def test_inputs_must_agree_on_rows():
    model = Model(inputs=[TensorSpec("a", "FP32", [-1]), TensorSpec("b", "FP32", [-1])])
    payload = body(
        {"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2]},
        {"name": "b", "datatype": "FP32", "shape": [3], "data": [1, 2, 3]},
    )
    with pytest.raises(ProtocolError, match="disagree on the batch dimension"):
        decode_request(payload, model)


def test_non_finite_floats_travel_as_triton_writes_them():
    # perf_analyzer's random FP32 data holds NaN and infinities, written unquoted as Triton does.
    payload = (
        b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], '
        b'"data": [NaN, Infinity, -Infinity, 1.5]}]}'
    )
    values = decode_request(payload, MLP).inputs["input"]
    assert np.isnan(values[0, 0])
    assert values[0, 1:].tolist() == [np.inf, -np.inf, 1.5]
    encoded = encode_response("mlp", {"output": values})
    assert b"NaN,Infinity,-Infinity,1.5" in encoded.body
    np.testing.assert_array_equal(decode_response(encoded.body)["output"], values)


def test_finite_outputs_whose_squares_overflow_are_still_written_by_orjson():
    # The finiteness check's screen is a sum of squares: FP16 values past 256 overflow it while
    # finite, and the exact check must then keep orjson's form (an FP16 written as such).
    values = np.array([[300.0, -60000.0, 1.5, 0.0]], dtype=np.float16)
    encoded = encode_response("mlp", {"output": values}, request_id="null")
    assert encoded.body == orjson.dumps(
        {
            "model_name": "mlp",
            "outputs": [
                {"name": "output", "datatype": "FP16", "shape": [1, 4], "data": values.reshape(-1)}
            ],
            "id": "null",
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def test_a_non_finite_output_among_finite_ones_is_written_as_nan_not_null():
    outputs = {"label": np.array([3, 1], dtype=np.int64), "output": X.copy()}
    outputs["output"][1, 2] = np.nan
    requested = [RequestedOutput("label", False), RequestedOutput("output", False)]
    encoded = encode_response("mlp", outputs, requested=requested)
    assert b"null" not in encoded.body
    assert b"NaN" in encoded.body
    np.testing.assert_array_equal(decode_response(encoded.body)["output"], outputs["output"])


def test_a_non_finite_binary_output_leaves_the_json_header_alone():
    values = np.array([[np.nan, np.inf, 1.0, 2.0]], dtype=np.float32)
    encoded = encode_response("mlp", {"output": values}, binary_output=True)
    assert encoded.header_length is not None
    decoded = decode_response(encoded.body, header_length=encoded.header_length)
    np.testing.assert_array_equal(decoded["output"], values)
