"""The v2 request decoder under fuzzing: it returns a request or raises ProtocolError, nothing else.

Whatever a client or a queue message holds, `decode_request` may only refuse with the protocol's
own error (a 400 with a fix for the server, a dead letter with a reason for the worker), and a
request it accepts must be answerable: the response to it encodes. Inputs come from Hypothesis
(v2-shaped documents with any JSON in any field, arbitrary bytes, binary-extension bodies with
any header length) plus nesting deeper than either JSON parser allows. Derandomized, so CI sees
the same examples every run; `FUZZ_EXAMPLES=20000` runs a longer search locally.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferstack.runtime.protocol import (
    InferRequest,
    ProtocolError,
    decode_request,
    encode_response,
)
from inferstack.runtime.tensors import TensorSpec

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Model:
    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec] = field(
        default_factory=lambda: [
            TensorSpec("output", "FP32", [-1, 4]),
            TensorSpec("label", "INT64", [-1]),
        ]
    )


MODELS = [
    Model("dense", [TensorSpec("input", "FP32", [-1, 4])]),
    Model("ids", [TensorSpec("ids", "INT8", [-1])]),
    Model("text", [TensorSpec("text", "BYTES", [-1])]),
    Model("mask", [TensorSpec("mask", "BOOL", [-1, 2])]),
    Model("pair", [TensorSpec("a", "FP16", [-1, -1]), TensorSpec("b", "UINT8", [-1, 3])]),
]
NAMES = ["input", "ids", "text", "mask", "a", "b", "output", "label", "other", ""]
DATATYPES = ["FP32", "FP16", "FP64", "INT8", "INT64", "UINT8", "BOOL", "BYTES", "fp32", ""]

# Any text, lone UTF-16 surrogates included (json.dumps writes them as \ud800 escapes).
text = st.text(st.characters(blacklist_categories=()), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=4),
    max_leaves=16,
)
numbers = st.integers(-300, 300) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
flat_data = st.lists(numbers | text, max_size=12)
nested_data = st.lists(st.lists(numbers, min_size=0, max_size=4), max_size=4)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as a v2 client would send it, or any JSON value at all."""
    return strategy | json_values


tensor_entries = st.fixed_dictionaries(
    {
        "name": maybe(st.sampled_from(NAMES)),
        "datatype": maybe(st.sampled_from(DATATYPES)),
        "shape": maybe(st.lists(st.integers(-2, 6), max_size=3)),
    },
    optional={
        "data": maybe(flat_data | nested_data),
        "parameters": maybe(
            st.fixed_dictionaries({}, optional={"binary_data_size": maybe(st.integers(-4, 64))})
        ),
    },
)
output_entries = st.fixed_dictionaries(
    {},
    optional={
        "name": maybe(st.sampled_from(NAMES)),
        "parameters": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "binary_data": maybe(st.booleans()),
                    "classification": json_values,
                },
            )
        ),
    },
)
documents = st.fixed_dictionaries(
    {"inputs": maybe(st.lists(tensor_entries, max_size=3))},
    optional={
        "id": maybe(text),
        "outputs": maybe(st.lists(output_entries, max_size=3)),
        "parameters": maybe(
            st.fixed_dictionaries({}, optional={"binary_data_output": maybe(st.booleans())})
        ),
    },
)
models = st.sampled_from(MODELS)


def decode_or_refuse(body: bytes, model: Model, header_length: int | None = None) -> None:
    """The property: ProtocolError (4xx) or a request whose response encodes."""
    try:
        request = decode_request(body, model, header_length=header_length)
    except ProtocolError as error:
        refused = error
    else:
        answer(request, model)
        return
    assert 400 <= refused.status < 500
    assert refused.message


def answer(request: InferRequest, model: Model) -> None:
    rows = request.batch_size
    outputs = {
        "output": np.zeros((rows, 4), dtype=np.float32),
        "label": np.zeros((rows,), dtype=np.int64),
    }
    for binary in (False, True):
        encode_response(
            model.name,
            outputs,
            request_id=request.id,
            requested=request.outputs,
            binary_output=binary or request.binary_output,
        )


@FUZZ
@given(document=documents, model=models)
def test_v2_shaped_documents_decode_or_are_refused(document: dict[str, Any], model: Model) -> None:
    decode_or_refuse(json.dumps(document).encode(), model)


@FUZZ
@given(document=documents, model=models, cut=st.integers(0, 400), noise=st.binary(max_size=8))
def test_cut_and_corrupted_documents_decode_or_are_refused(
    document: dict[str, Any], model: Model, cut: int, noise: bytes
) -> None:
    body = json.dumps(document).encode()
    decode_or_refuse(body[:cut] + noise + body[cut:], model)


@FUZZ
@given(body=st.binary(max_size=256), model=models, header_length=st.none() | st.integers(-2, 300))
def test_arbitrary_bytes_decode_or_are_refused(
    body: bytes, model: Model, header_length: int | None
) -> None:
    decode_or_refuse(body, model, header_length)


@FUZZ
@given(
    document=documents,
    model=models,
    tensor=st.binary(max_size=64),
    slack=st.integers(-3, 3),
)
def test_binary_extension_bodies_decode_or_are_refused(
    document: dict[str, Any], model: Model, tensor: bytes, slack: int
) -> None:
    header = json.dumps(document).encode()
    decode_or_refuse(header + tensor, model, max(-1, len(header) + slack))


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    return b"[" * depth + leaf + b"]" * depth


GOOD_INPUT = b'"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]'


@pytest.mark.parametrize("depth", [500, 1023, 1024, 1025, 5000, 100_000])
@pytest.mark.parametrize(
    "template",
    [
        b'{"inputs": DEEP}',
        b'{"inputs": [{GOOD, "name": DEEP}]}',
        b'{"inputs": [{GOOD, "datatype": DEEP}]}',
        b'{"inputs": [{GOOD, "shape": DEEP}]}',
        b'{"inputs": [{GOOD, "data": DEEP}]}',
        b'{"inputs": [{GOOD}], "outputs": [{"name": DEEP}]}',
        b'{"inputs": [{GOOD}], "id": DEEP}',
        b'{"inputs": [{GOOD}], "parameters": {"x": DEEP}}',
        b'{"inputs": [{GOOD}], "outputs": [{"name": "output", "parameters": {"binary_data": '
        b"DEEP}}]}",
    ],
    ids=["inputs", "name", "datatype", "shape", "data", "output-name", "id", "parameters", "flag"],
)
def test_nesting_deeper_than_the_parsers_allow_is_refused(template: bytes, depth: int) -> None:
    body = template.replace(b"GOOD", GOOD_INPUT).replace(b"DEEP", nested(depth))
    decode_or_refuse(body, MODELS[0])


@pytest.mark.parametrize("depth", [10, 900, 1020])
def test_deeply_nested_bytes_data_is_flattened_without_recursion(depth: int) -> None:
    body = b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": %s}]}' % (
        nested(depth, b'"a"')
    )
    request = decode_request(body, MODELS[2])
    assert request.inputs["text"].tolist() == [b"a"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": [{GOOD}], "outputs": [{"name": ["output"]}]}', "is not an output"),
        (b'{"inputs": [{GOOD}], "outputs": [{"name": {"a": 1}}]}', r"name \{\.\.\.\} is not"),
        (b'{"inputs": [{GOOD}], "id": "\\ud800"}', "'id' must be a string of valid Unicode"),
        (
            b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], '
            b'"data": ["\\udfff"]}]}',
            "lone UTF-16 surrogate",
        ),
        (b'{"inputs": DEEP}', "nested more than 1024 levels"),
    ],
    ids=["output-name-list", "output-name-dict", "id-surrogate", "bytes-surrogate", "deep"],
)
def test_the_inputs_that_used_to_escape_as_other_errors_are_protocol_errors(
    body: bytes, message: str
) -> None:
    body = body.replace(b"GOOD", GOOD_INPUT).replace(b"DEEP", nested(5000))
    model = MODELS[2] if b"BYTES" in body else MODELS[0]
    with pytest.raises(ProtocolError, match=message):
        decode_request(body, model)
