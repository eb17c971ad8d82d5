"""No input produces a 5xx: generated requests against the real HTTP endpoint.

One `HttpServer` (uvloop, as in production) serves a real `InferenceApp` and batcher on a thread
of its own; hypothesis sends it malformed v2 request documents (near-valid ones mutated field by
field, deep nesting, wrong types where lists or names belong), random header values, and raw
bytes that are not HTTP at all. Every answer must be a 2xx or 4xx; a 4xx must carry the v2 error
document. Derandomized, so that a run is reproducible and CI sees the same examples each time.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inferstack.runtime.batcher import BatcherConfig, DynamicBatcher
from inferstack.runtime.metrics import RuntimeMetrics
from inferstack.runtime.models import LoadedModel
from inferstack.runtime.server.http import HttpLimits, HttpServer
from inferstack.runtime.server.routes import InferenceApp, ServedModel
from inferstack.runtime.tensors import TensorSpec

MODEL = "fuzzed"
INFER = f"/v2/models/{MODEL}/infer"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class FuzzedModel(LoadedModel):
    """Four inputs of four kinds (float, variable-shape int, bool, bytes); `y = 2x`."""

    def __init__(self) -> None:
        self.name = MODEL
        self.uri = "tests.runtime.test_fuzz_http:FuzzedModel"
        self.inputs = [
            TensorSpec("x", "FP32", [-1, 2]),
            TensorSpec("n", "INT32", [-1, -1]),
            TensorSpec("b", "BOOL", [-1]),
            TensorSpec("s", "BYTES", [-1]),
        ]
        self.outputs = [TensorSpec("y", "FP32", [-1, 2]), TensorSpec("z", "INT32", [-1, -1])]

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"] * 2, "z": inputs["n"]}


class ServerThread:
    """The server on its own event loop and thread, for blocking clients in the test."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._loop = uvloop.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(30), "the server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        metrics = RuntimeMetrics(MODEL)
        model = FuzzedModel()
        config = BatcherConfig(max_batch_size=8, max_queue_delay_s=0.0)
        batcher = DynamicBatcher(model.predict_batch, config, name=MODEL, metrics=metrics)
        await batcher.start()
        app = InferenceApp(MODEL, metrics)
        app.served = ServedModel(model, batcher, metrics)
        server = HttpServer(app, HttpLimits(max_request_bytes=256 * 1024, max_header_bytes=4096))
        await server.start("127.0.0.1", 0)
        self.port = server.port
        self._ready.set()
        await self._stop.wait()
        await server.close(grace_s=0)
        await batcher.close()
        app.decoder.close()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread() as running:
        yield running


# Strategies --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e39, max_value=1e39)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
names = st.sampled_from(["x", "n", "b", "s", "y", "z", ""]) | json_values
datatypes = st.sampled_from(["FP32", "INT32", "BOOL", "BYTES", "FP16", "INT64", "fp32"]) | (
    json_values
)
shapes = (
    st.lists(st.integers(min_value=-2, max_value=4), max_size=3)
    | st.lists(st.integers(min_value=0, max_value=2**62), min_size=1, max_size=2)
    | json_values
)
datas = (
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=8)
    | st.lists(st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=3), max_size=3)
    | st.lists(st.booleans(), max_size=4)
    | st.lists(st.text(max_size=4), max_size=4)
    | json_values
)
parameters = (
    st.fixed_dictionaries(
        {},
        optional={
            "binary_data_size": st.integers(min_value=-5, max_value=64) | json_values,
            "binary_data_output": json_values,
            "binary_data": json_values,
            "classification": json_values,
        },
    )
    | json_values
)
tensor_entries = st.fixed_dictionaries(
    {},
    optional={
        "name": names,
        "datatype": datatypes,
        "shape": shapes,
        "data": datas,
        "parameters": parameters,
    },
)
documents = (
    st.fixed_dictionaries(
        {},
        optional={
            "inputs": st.lists(tensor_entries, max_size=5) | json_values,
            "outputs": st.lists(
                st.fixed_dictionaries({}, optional={"name": names, "parameters": parameters}),
                max_size=3,
            )
            | json_values,
            "parameters": parameters,
            "id": json_values,
        },
    )
    | json_values
)


def _body(document: Any, style: str) -> bytes:
    if style == "deep":
        return b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    if style == "truncated":
        return json.dumps(document).encode()[:-1]
    return json.dumps(document, allow_nan=True).encode()


def _post(server: ServerThread, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("POST", INFER, body, {"content-type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _check(status: int, payload: bytes) -> None:
    assert status < 500, payload
    if status >= 400:
        assert set(json.loads(payload)) == {"error"}, payload


# Tests -------------------------------------------------------------------------------------


@FUZZ
@given(
    document=documents,
    style=st.sampled_from(["json", "json", "json", "deep", "truncated"]),
    binary_tail=st.binary(max_size=24),
    header_length=st.none() | st.integers(min_value=-3, max_value=400) | st.text(max_size=5),
)
def test_no_request_document_gets_a_5xx(
    server: ServerThread,
    document: Any,
    style: str,
    binary_tail: bytes,
    header_length: int | str | None,
) -> None:
    body = _body(document, style)
    headers: dict[str, str] = {}
    if header_length is not None:
        body += binary_tail
        value = str(header_length).encode("latin-1", "replace").decode("latin-1")
        headers["inference-header-content-length"] = value.replace("\r", "").replace("\n", "")
    _check(*_post(server, body, headers))


def test_the_inputs_that_gave_500_get_400(server: ServerThread) -> None:
    x = {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}
    rest = [
        {"name": "n", "datatype": "INT32", "shape": [1, 1], "data": [1]},
        {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]},
        {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["a"]},
    ]
    for body in (
        json.dumps({"inputs": [x, *rest], "outputs": [{"name": ["y"]}]}).encode(),
        json.dumps({"inputs": [x, *rest], "outputs": [{"name": {"y": 1}}]}).encode(),
        b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ):
        status, payload = _post(server, body, {})
        assert status == 400, payload
    assert _post(server, json.dumps({"inputs": [x, *rest]}).encode(), {})[0] == 200


@FUZZ
@given(
    raw=st.binary(max_size=200)
    | st.lists(
        st.sampled_from(
            [
                b"GET ",
                b"POST ",
                b"/v2/health/live",
                INFER.encode(),
                b" HTTP/1.1",
                b" HTTP/1.0",
                b"\r\n",
                b"content-length: 5\r\n",
                b"transfer-encoding: chunked\r\n",
                b"expect: 100-continue\r\n",
                b"5\r\nhello\r\n",
                b"0\r\n\r\n",
                b"host: x\r\n",
                b"\x00",
                b"%zz",
                b" ",
            ]
        ),
        max_size=12,
    ).map(b"".join)
)
def test_no_bytes_on_the_wire_get_a_5xx(server: ServerThread, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # Unread input when the server closed after its answer: the answer came first.
    for line in answer.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 ") and line[9:10].isdigit():
            assert int(line[9:12]) < 500, answer
