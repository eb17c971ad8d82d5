"""The real server process, driven over HTTP by the official Triton client and by raw requests."""

from __future__ import annotations

import json
import os
import signal
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton

from inferstack.runtime.models import configure_torch_threads, load_model
from tests.processes import is_gone, model_processes
from tests.runtime.handlers import GATE_VALUE
from tests.runtime.serving import (
    Server,
    http_status,
    post_json,
    row_body,
    start_gated,
    start_server,
    stop_server,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlp() -> Iterator[Server]:
    server = start_server(
        "--model", "builtin://mlp", "--max-queue-delay-ms", "1", "--max-request-bytes", "200000"
    )
    yield server
    stop_server(server)


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_outputs_equal_the_models_direct_output(mlp, binary):
    client = triton.InferenceServerClient(f"127.0.0.1:{mlp.port}")
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    x = np.random.default_rng(7).standard_normal((3, 512), dtype=np.float32)
    tensor = triton.InferInput("input", [3, 512], "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    result = client.infer(
        "mlp",
        [tensor],
        outputs=[triton.InferRequestedOutput("output", binary_data=binary)],
        request_id="req-7",
    )
    # Same input, same thread count, alone in its batch: bit-for-bit the direct result.
    configure_torch_threads(1)
    direct = load_model("builtin://mlp").predict_batch({"input": x})["output"]
    np.testing.assert_array_equal(result.as_numpy("output"), direct)
    assert result.get_response()["id"] == "req-7"


def test_the_model_can_run_on_a_server_thread_instead_of_a_process():
    server = start_server("--model", "builtin://mlp", "--model-process", "false")
    try:
        assert model_processes(server.process.pid) == []
        x = np.random.default_rng(8).standard_normal((2, 512), dtype=np.float32)
        code, _, payload = post_json(f"{server.url}/v2/models/mlp/infer", row_body(x))
    finally:
        stop_server(server)
    assert code == 200
    configure_torch_threads(1)
    direct = load_model("builtin://mlp").predict_batch({"input": x})["output"]
    output = json.loads(payload)["outputs"][0]
    np.testing.assert_array_equal(np.array(output["data"], np.float32).reshape(2, 512), direct)


def test_metadata_and_triton_config(mlp):
    client = triton.InferenceServerClient(f"127.0.0.1:{mlp.port}")
    metadata = client.get_model_metadata("mlp")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 512]}]
    assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 512]}]
    config = client.get_model_config("mlp")
    assert config["max_batch_size"] == 32
    assert config["input"] == [{"name": "input", "data_type": "TYPE_FP32", "dims": [512]}]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 1000
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v2/models/mlp/infer", b"{oops", 400, "not valid JSON"),
        ("/v2/models/mlp/infer", row_body(np.zeros((1, 3), np.float32)), 400, "input 'input'"),
        ("/v2/models/bert/infer", row_body(np.zeros((1, 512), np.float32)), 404, "unknown model"),
        ("/v2/models/mlp/infer", row_body(np.zeros((100, 512), np.float32)), 413, "exceeds"),
        ("/v2/models/mlp/versions/2/infer", b"{}", 404, "only version 1"),
    ],
)
def test_bad_requests_get_4xx_with_a_reason(mlp, path, body, status, fragment):
    code, _, payload = post_json(mlp.url + path, body)
    assert code == status
    assert fragment in json.loads(payload)["error"]


def test_metrics_are_exposed_for_prometheus(mlp):
    code, _, _ = post_json(
        f"{mlp.url}/v2/models/mlp/infer", row_body(np.ones((1, 512), np.float32))
    )
    assert code == 200
    with urllib.request.urlopen(f"{mlp.url}/metrics") as response:
        text = response.read().decode()
    success = next(
        line
        for line in text.splitlines()
        if line.startswith('inferstack_requests_total{model="mlp",outcome="success"}')
    )
    assert float(success.split()[-1]) >= 1
    for name in ("inferstack_queue_depth", "inferstack_compute_seconds_bucket"):
        assert name in text


def test_full_queue_then_graceful_drain_on_sigterm(tmp_path):
    server, entered, gate = start_gated(
        tmp_path,
        "--max-batch-size",
        "1",
        "--max-queue-size",
        "1",
        "--max-queue-delay-ms",
        "0",
        "--drain-listen-s",
        "0",
    )
    infer = f"{server.url}/v2/models/gated/infer"
    held = np.full((1, 4), GATE_VALUE, np.float32)
    queued = np.arange(4, dtype=np.float32).reshape(1, 4)
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def send(key: str, values: np.ndarray) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: answers.__setitem__(key, post_json(infer, row_body(values)))
        )
        thread.start()
        return thread

    def queue_depth() -> float:
        with urllib.request.urlopen(f"{server.url}/metrics") as response:
            for line in response.read().decode().splitlines():
                if line.startswith("inferstack_queue_depth{"):
                    return float(line.split()[-1])
        return -1.0

    try:
        first = send("held", held)
        with open(entered, "rb") as signal_in:  # Blocks until the model holds the request.
            assert signal_in.read(1) == b"1"
        second = send("queued", queued)
        wait_until(lambda: queue_depth() == 1, "the second request to be queued", 30)

        code, headers, payload = post_json(infer, row_body(queued))
        assert code == 429
        assert int(headers["retry-after"]) >= 1
        assert "queue is full" in json.loads(payload)["error"]

        server.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: http_status(f"{server.url}/v2/health/ready") == 503, "readiness to drop", 30
        )
        assert http_status(f"{server.url}/v2/health/live") == 200
        code, headers, payload = post_json(infer, row_body(queued))
        assert code == 503
        assert "draining" in json.loads(payload)["error"]
        assert "retry-after" in headers

        with open(gate, "wb") as release:  # Let the held request finish.
            release.write(b"1")
        first.join(60)
        second.join(60)
        assert server.process.wait(timeout=60) == 0
    finally:
        stop_server(server)
    for key, values in (("held", held), ("queued", queued)):
        code, _, payload = answers[key]
        assert code == 200, payload
        output = json.loads(payload)["outputs"][0]
        assert output["data"] == values.ravel().tolist()


def test_a_crashed_model_process_makes_the_server_exit_1_for_a_restart():
    server = start_server("--model", "tests.runtime.handlers:Picky")
    try:
        children = model_processes(server.process.pid)
        assert len(children) == 1
        os.kill(children[0], signal.SIGKILL)
        assert server.process.wait(timeout=60) == 1
    finally:
        stop_server(server)
    assert b"a model process exited unexpectedly" in server.process.stderr.read()


def test_the_model_process_exits_when_the_server_is_killed():
    server = start_server("--model", "tests.runtime.handlers:Picky")
    try:
        (child,) = model_processes(server.process.pid)
        server.process.kill()  # No drain, no cleanup: the pipe closing is all the child sees.
        server.process.wait(timeout=60)
        wait_until(lambda: is_gone(child), "the child to exit")
    finally:
        stop_server(server)


def test_a_second_sigterm_stops_at_once_even_with_a_batch_in_the_model(tmp_path):
    server, entered, _ = start_gated(tmp_path, "--max-queue-delay-ms", "0")
    answer: list[tuple[int, dict[str, str], bytes] | BaseException] = []

    def held() -> None:
        try:
            answer.append(
                post_json(
                    f"{server.url}/v2/models/gated/infer",
                    row_body(np.full((1, 4), GATE_VALUE, np.float32)),
                )
            )
        except OSError as error:  # The connection is dropped: that is the point.
            answer.append(error)

    client = threading.Thread(target=held)
    try:
        client.start()
        with open(entered, "rb") as signal_in:  # The model now holds the batch, gate shut.
            assert signal_in.read(1) == b"1"
        (model_process,) = model_processes(server.process.pid)
        server.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: http_status(f"{server.url}/v2/health/ready") == 503, "readiness to drop", 30
        )
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 1
        client.join(60)
    finally:
        stop_server(server)
    assert not isinstance(answer[0], tuple) or answer[0][0] != 200
    assert is_gone(model_process)
    assert b"second signal" in server.process.stderr.read()
