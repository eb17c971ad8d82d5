"""One conformance suite, three clients: Triton's own `tritonclient.grpc` (raw tensors) and
`tritonclient.http` (JSON and binary tensors), unchanged, against `inferstack serve`.

Each client must see the same metadata, get for a batch of rows exactly what it gets for the rows
sent one by one (and what the model computes), and get every bad request refused as the client's
fault: a 4xx or a gRPC status other than INTERNAL/UNKNOWN, with a message naming the problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from inferstack.runtime.models import configure_torch_threads, load_model
from tests.runtime.serving import Server, free_port, start_server, stop_server

pytestmark = pytest.mark.integration

SERVER_FAULTS = {"StatusCode.INTERNAL", "StatusCode.UNKNOWN"}


@dataclass
class GrpcServer:
    """A served model with both ports."""

    http: Server
    grpc_port: int


@pytest.fixture(scope="module")
def served() -> Iterator[GrpcServer]:
    grpc_port = free_port()
    server = start_server(
        "--model",
        "builtin://mlp",
        "--max-queue-delay-ms",
        "1",
        "--grpc-port",
        str(grpc_port),
    )
    yield GrpcServer(server, grpc_port)
    stop_server(server)


class Client:
    """One Triton client kind, reduced to what the suite asks of it."""

    def __init__(self, kind: str, served: GrpcServer) -> None:
        self.kind = kind
        self.module: Any = triton_grpc if kind == "grpc" else triton_http
        address = (
            f"127.0.0.1:{served.grpc_port}" if kind == "grpc" else f"127.0.0.1:{served.http.port}"
        )
        self.client = self.module.InferenceServerClient(address)

    def metadata(self) -> dict[str, Any]:
        if self.kind == "grpc":
            return self.client.get_model_metadata("mlp", as_json=True)
        return self.client.get_model_metadata("mlp")

    def infer(
        self, values: np.ndarray, *, name: str = "input", datatype: str = "FP32", model="mlp"
    ) -> np.ndarray:
        tensor = self.module.InferInput(name, list(values.shape), datatype)
        if self.kind == "grpc":
            tensor.set_data_from_numpy(values)
        else:
            tensor.set_data_from_numpy(values, binary_data=self.kind == "http-binary")
        result = self.client.infer(model, [tensor])
        return result.as_numpy("output")

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=["grpc", "http-json", "http-binary"])
def client(request, served) -> Iterator[Client]:
    made = Client(request.param, served)
    yield made
    made.close()


def test_every_client_sees_the_same_liveness_readiness_and_metadata(client):
    assert client.client.is_server_live()
    assert client.client.is_server_ready()
    assert client.client.is_model_ready("mlp")
    metadata = client.metadata()
    assert metadata["name"] == "mlp"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "pytorch_libtorch"
    # The gRPC JSON form writes int64 shapes as strings (protobuf's JSON mapping).
    shapes = {t["name"]: [int(d) for d in t["shape"]] for t in metadata["inputs"]}
    assert shapes == {"input": [-1, 512]}
    assert [(t["name"], t["datatype"]) for t in metadata["outputs"]] == [("output", "FP32")]


def test_a_batch_of_rows_equals_the_rows_sent_one_by_one_and_the_model(client):
    rows = np.random.default_rng(7).standard_normal((5, 512)).astype(np.float32)
    batch = client.infer(rows)
    one_by_one = np.concatenate([client.infer(rows[i : i + 1]) for i in range(len(rows))])
    assert batch.shape == (5, 512)
    assert batch.dtype == np.float32
    # One batch or five: the server may batch them differently, the numbers must agree.
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-5, atol=1e-6)
    configure_torch_threads(1)
    direct = load_model("builtin://mlp").predict_batch({"input": rows})["output"]
    np.testing.assert_allclose(batch, direct, rtol=1e-5, atol=1e-6)


BAD_REQUESTS = {
    "a row of the wrong width": ({"values": np.zeros((2, 5), np.float32)}, "shape"),
    "the wrong datatype": (
        {"values": np.zeros((1, 512), np.float64), "datatype": "FP64"},
        "datatype",
    ),
    "an input the model does not have": (
        {"values": np.zeros((1, 512), np.float32), "name": "nope"},
        "not an input",
    ),
    "a model the server does not serve": (
        {"values": np.zeros((1, 512), np.float32), "model": "resnet"},
        "unknown model",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_are_the_clients_fault_with_a_message_naming_it(client, case):
    arguments, named = BAD_REQUESTS[case]
    with pytest.raises(InferenceServerException) as refused:
        client.infer(**arguments)
    status = str(refused.value.status())
    message = refused.value.message()
    assert named in message
    if client.kind == "grpc":
        assert status.startswith("StatusCode.")
        assert status not in SERVER_FAULTS
    else:
        assert 400 <= int(status) < 500


def test_grpc_typed_contents_equal_raw_contents(served):
    """The proto's typed `contents` (fp32_contents) answer as raw_input_contents do."""
    from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb
    from inferstack.runtime.grpc.generated import open_inference_grpc_pb2_grpc as stubs

    rows = np.random.default_rng(3).standard_normal((2, 512)).astype(np.float32)
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = stubs.GRPCInferenceServiceStub(channel)
        typed = pb.ModelInferRequest(model_name="mlp", id="typed")
        typed.inputs.add(name="input", datatype="FP32", shape=[2, 512]).contents.fp32_contents[
            :
        ] = rows.ravel().tolist()
        raw = pb.ModelInferRequest(model_name="mlp", raw_input_contents=[rows.tobytes()])
        raw.inputs.add(name="input", datatype="FP32", shape=[2, 512])
        answers = [stub.ModelInfer(typed, timeout=30), stub.ModelInfer(raw, timeout=30)]
    assert answers[0].id == "typed"
    assert [a.outputs[0].name for a in answers] == ["output", "output"]
    assert [list(a.outputs[0].shape) for a in answers] == [[2, 512], [2, 512]]
    outputs = [np.frombuffer(a.raw_output_contents[0], "<f4") for a in answers]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)


def test_the_grpc_pages_example_runs_as_written(served, capsys):
    """docs/runtime/grpc.md's client block, run as printed, only its address pointed at the
    served port (tests/test_readme.py names this test as the block's twin)."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "runtime" / "grpc.md").read_text()
    [block] = [
        part.split("```", 1)[0]
        for part in page.split("```python\n")[1:]
        if "tritonclient.grpc as triton" in part
    ]
    assert '"localhost:8001"' in block
    exec(block.replace('"localhost:8001"', f'"127.0.0.1:{served.grpc_port}"'), {})
    assert capsys.readouterr().out.strip() == "(4, 512)"


def test_the_model_configuration_is_the_same_over_grpc_and_http(served):
    """Triton's ModelConfig RPC (an addition to the KServe service) answers what
    `GET /v2/models/{m}/config` does: perf_analyzer and Triton's clients read it."""
    over_grpc = triton_grpc.InferenceServerClient(f"127.0.0.1:{served.grpc_port}")
    over_http = triton_http.InferenceServerClient(f"127.0.0.1:{served.http.port}")
    try:
        config = over_grpc.get_model_config("mlp", as_json=True)["config"]
        expected = over_http.get_model_config("mlp")
        with pytest.raises(InferenceServerException) as unknown:
            over_grpc.get_model_config("resnet")
    finally:
        over_grpc.close()
        over_http.close()
    assert config["name"] == expected["name"] == "mlp"
    # protobuf's JSON mapping writes 64-bit integers as strings.
    assert [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in config["input"]] == [
        ("input", "TYPE_FP32", [512])
    ]
    assert config["max_batch_size"] == expected["max_batch_size"]
    assert [t["data_type"] for t in config["output"]] == ["TYPE_FP32"]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == int(
        expected["dynamic_batching"]["max_queue_delay_microseconds"]
    )
    assert str(unknown.value.status()) == "StatusCode.NOT_FOUND"
    assert "unknown model" in unknown.value.message()


def test_a_stream_answers_each_request_by_id_as_unary_calls_do_and_errors_stay_on_it(served):
    """tritonclient.grpc's stream API (start_stream / async_stream_infer) against Triton's
    ModelStreamInfer: each row sent on the stream comes back under its id with what a unary
    batch gives; a bad request is answered on the stream with its error and the stream goes on."""
    import queue

    rows = np.random.default_rng(11).standard_normal((6, 512)).astype(np.float32)
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{served.grpc_port}")
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    try:
        batch = _grpc_infer(client, rows)
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        for index in range(len(rows)):
            if index == 3:
                bad = triton_grpc.InferInput("input", [1, 5], "FP32")
                bad.set_data_from_numpy(np.zeros((1, 5), np.float32))
                client.async_stream_infer("mlp", [bad], request_id="bad")
            tensor = triton_grpc.InferInput("input", [1, 512], "FP32")
            tensor.set_data_from_numpy(rows[index : index + 1])
            client.async_stream_infer("mlp", [tensor], request_id=f"row-{index}")
        received = [answers.get(timeout=30) for _ in range(len(rows) + 1)]
        client.stop_stream()
    finally:
        client.close()
    errors = [error for _, error in received if error is not None]
    results = {result.get_response().id: result for result, error in received if error is None}
    assert len(errors) == 1
    assert "shape" in errors[0].message()
    assert sorted(results) == sorted(f"row-{index}" for index in range(len(rows)))
    streamed = np.concatenate([results[f"row-{i}"].as_numpy("output") for i in range(len(rows))])
    np.testing.assert_allclose(streamed, batch, rtol=1e-5, atol=1e-6)


def _grpc_infer(client: Any, rows: np.ndarray) -> np.ndarray:
    tensor = triton_grpc.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    return client.infer("mlp", [tensor]).as_numpy("output")
