"""The gRPC port of the real server process under a hostile client: malformed HTTP/2 frames and
gRPC messages, messages over the model's limit, a flood past the queue, and SIGTERM.

Every loop is bounded; timeouts are hang guards only. What is counted: which status each call
got (never INTERNAL or UNKNOWN for the client's own mistake), and that valid calls keep working.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from inferstack.runtime.grpc.generated import health_pb2
from inferstack.runtime.grpc.generated import health_pb2_grpc as health_stubs
from inferstack.runtime.grpc.generated import open_inference_grpc_pb2 as pb
from inferstack.runtime.grpc.generated import open_inference_grpc_pb2_grpc as stubs
from tests.runtime.handlers import GATE_VALUE
from tests.runtime.serving import Server, free_port, start_server, stop_server, wait_until

pytestmark = pytest.mark.integration

SERVER_FAULTS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
INFER = "/inference.GRPCInferenceService/ModelInfer"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY, RST_STREAM, HEADERS, DATA, SETTINGS = 7, 3, 1, 0, 4
END_STREAM, END_HEADERS = 0x1, 0x4


@dataclass
class Served:
    """A server process and its gRPC port."""

    http: Server
    grpc_port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def _serve(*flags: str, env: dict[str, str] | None = None) -> Served:
    port = free_port()
    return Served(start_server(*flags, "--grpc-port", str(port), env=env), port)


@pytest.fixture(scope="module")
def doubler() -> Iterator[Served]:
    served = _serve("--model", "tests.runtime.handlers:Doubler", "--max-queue-delay-ms", "0")
    yield served
    stop_server(served.http)


def _doubler_request(rows: int = 1) -> pb.ModelInferRequest:
    values = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    request = pb.ModelInferRequest(model_name="doubler", raw_input_contents=[values.tobytes()])
    request.inputs.add(name="x", datatype="FP32", shape=[rows, 3])
    return request


def _valid_call_works(served: Served) -> None:
    with grpc.insecure_channel(served.target) as channel:
        answer = stubs.GRPCInferenceServiceStub(channel).ModelInfer(_doubler_request(), timeout=30)
    assert np.frombuffer(answer.raw_output_contents[0], "<f4").tolist() == [0.0, 2.0, 4.0]


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def _literal(name: str, value: str) -> bytes:
    """An HPACK literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    return b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()


GRPC_HEADERS = b"".join(
    _literal(name, value)
    for name, value in (
        (":method", "POST"),
        (":scheme", "http"),
        (":path", INFER),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    )
)
MALFORMED = {
    "an HTTP/1.1 request": b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "bytes that are no protocol": bytes(range(256)) * 4,
    "a SETTINGS frame of 5 bytes": PREFACE + _frame(SETTINGS, 0, 0, b"\0" * 5),
    "a header block HPACK cannot decode": PREFACE
    + _frame(SETTINGS, 0, 0, b"")
    + _frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff\xff\xff"),
}
HELD = {
    # grpc skips a frame on stream 0 that it does not expect, and waits for the rest of a message
    # that its length prefix announced: such connections stay open until the idle timeout or
    # the connection age (runtime/grpc/server.py), and cost nothing meanwhile.
    "a DATA frame on stream 0": PREFACE + _frame(SETTINGS, 0, 0, b"") + _frame(DATA, 0, 0, b"x"),
    "a gRPC message shorter than its length prefix": PREFACE
    + _frame(SETTINGS, 0, 0, b"")
    + _frame(HEADERS, END_HEADERS, 1, GRPC_HEADERS)
    + _frame(DATA, END_STREAM, 1, b"\0" + (1000).to_bytes(4, "big") + b"0123456789"),
}


def _frames_until_closed(
    sock: socket.socket, timeout_s: float = 15.0
) -> tuple[list[tuple[int, int, int]], bool]:
    """(type, flags, stream) of each frame the server sends until it closes, ends stream 1 or
    sends GOAWAY; and whether it closed the connection."""
    sock.settimeout(timeout_s)
    data, frames = b"", []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return frames, True
        if not chunk:
            return frames, True
        data += chunk
        while len(data) >= 9:
            length = int.from_bytes(data[:3], "big")
            if len(data) < 9 + length:
                break
            frames.append((data[3], data[4], int.from_bytes(data[5:9], "big") & 0x7FFFFFFF))
            data = data[9 + length :]
        if any(_ends_exchange(frame) for frame in frames):
            break
    return frames, False


def _ends_exchange(frame: tuple[int, int, int]) -> bool:
    kind, flags, stream = frame
    return kind == GOAWAY or (
        stream == 1 and (kind == RST_STREAM or (kind == HEADERS and flags & END_STREAM))
    )


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_frames_end_their_exchange_and_valid_calls_go_on(doubler, case):
    with socket.create_connection(("127.0.0.1", doubler.grpc_port), timeout=10) as sock:
        sock.sendall(MALFORMED[case])
        frames, closed = _frames_until_closed(sock)
    # The server ended it: closed the connection, sent GOAWAY, or ended stream 1.
    assert closed or any(_ends_exchange(frame) for frame in frames), frames
    assert doubler.http.process.poll() is None
    _valid_call_works(doubler)


def test_connections_grpc_holds_open_do_not_stop_valid_calls(doubler):
    sockets = []
    try:
        for payload in HELD.values():
            for _ in range(20):
                sock = socket.create_connection(("127.0.0.1", doubler.grpc_port), timeout=10)
                sock.sendall(payload)
                sockets.append(sock)
        frames, closed = _frames_until_closed(sockets[-1], timeout_s=2.0)
        assert not closed
        assert not any(_ends_exchange(frame) for frame in frames)
        for _ in range(5):
            _valid_call_works(doubler)
    finally:
        for sock in sockets:
            sock.close()


def test_bytes_that_are_no_message_are_invalid_argument_not_internal(doubler):
    with grpc.insecure_channel(doubler.target) as channel:
        infer = channel.unary_unary(INFER)
        for garbage in (b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x2a\x05\x0a"):
            with pytest.raises(grpc.RpcError) as refused:
                infer(garbage, timeout=30)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid inference.ModelInferRequest" in refused.value.details()
    _valid_call_works(doubler)


def test_a_message_over_the_models_limit_is_refused_before_it_is_kept(doubler):
    # Doubler's rows are 3 floats; the limit is the JSON worst case of a full batch (< 1 MiB).
    request = _doubler_request()
    request.raw_input_contents[0] = b"\0" * (4 << 20)
    with grpc.insecure_channel(doubler.target) as channel:
        stub = stubs.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelInfer(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in refused.value.details()
    _valid_call_works(doubler)


def test_bad_inputs_in_a_flood_of_calls_are_all_refused_as_the_clients_fault(doubler):
    wrong = _doubler_request()
    wrong.inputs[0].shape[:] = [1, 4]
    with grpc.insecure_channel(doubler.target) as channel:
        stub = stubs.GRPCInferenceServiceStub(channel)
        calls = [stub.ModelInfer.future(wrong, timeout=60) for _ in range(200)]
        codes = [call.exception().code() for call in calls]
    assert set(codes) == {grpc.StatusCode.INVALID_ARGUMENT}
    _valid_call_works(doubler)


def test_a_stream_of_garbage_and_bad_inputs_is_answered_on_the_stream_and_stays_usable(doubler):
    """ModelStreamInfer (Triton's): bytes that are no message and a flood of bad inputs each get
    an `error_message` answer naming the problem on the open stream, never INTERNAL; the valid
    request sent after them is answered with its result."""
    from inferstack.runtime.grpc.generated import grpc_service_pb2 as triton

    wrong = _doubler_request()
    wrong.inputs[0].shape[:] = [1, 4]
    good = _doubler_request()
    good.id = "good"
    messages = [b"\xff\xff\xff", *[wrong.SerializeToString()] * 100, good.SerializeToString()]
    with grpc.insecure_channel(doubler.target) as channel:
        stream = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer",
            response_deserializer=triton.ModelStreamInferResponse.FromString,
        )
        answers = list(stream(iter(messages), timeout=60))
    assert len(answers) == len(messages)
    errors = [answer.error_message for answer in answers if answer.error_message]
    assert len(errors) == len(messages) - 1
    assert sum("not a valid inference.ModelInferRequest" in error for error in errors) == 1
    assert sum("shape" in error for error in errors) == 100
    [result] = [answer.infer_response for answer in answers if not answer.error_message]
    assert result.id == "good"
    assert np.frombuffer(result.raw_output_contents[0], "<f4").tolist() == [0.0, 2.0, 4.0]
    _valid_call_works(doubler)


def _gated(tmp_path: Path, *flags: str) -> tuple[Served, Path, Path]:
    entered, gate = tmp_path / "entered", tmp_path / "gate"
    os.mkfifo(entered)
    os.mkfifo(gate)
    served = _serve(
        "--model",
        "tests.runtime.handlers:Gated",
        "--max-batch-size",
        "1",
        "--max-queue-size",
        "1",
        "--max-queue-delay-ms",
        "0",
        *flags,
        env={"INFERSTACK_TEST_ENTERED": str(entered), "INFERSTACK_TEST_GATE": str(gate)},
    )
    return served, entered, gate


def _gated_request(value: float) -> pb.ModelInferRequest:
    values = np.full((1, 4), value, np.float32)
    request = pb.ModelInferRequest(model_name="gated", raw_input_contents=[values.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    return request


def _hold_one(stub, entered: Path) -> grpc.Future:
    held = stub.ModelInfer.future(_gated_request(GATE_VALUE), timeout=120)
    with open(entered, "rb") as signal_in:  # Blocks until the model holds the request.
        assert signal_in.read(1) == b"1"
    return held


def test_a_flood_past_the_queue_is_resource_exhausted_with_a_retry_hint(tmp_path):
    served, entered, gate = _gated(tmp_path)
    try:
        with grpc.insecure_channel(served.target) as channel:
            stub = stubs.GRPCInferenceServiceStub(channel)
            held = _hold_one(stub, entered)
            queued = stub.ModelInfer.future(_gated_request(1.0), timeout=120)
            wait_until(lambda: _queue_depth(served) == 1, "the second call to be queued", 30)
            flood = [stub.ModelInfer.future(_gated_request(2.0), timeout=120) for _ in range(40)]
            refusals = [call.exception() for call in flood]
            with open(gate, "wb") as release:
                release.write(b"1")
            assert held.result().outputs[0].name == "output"
            assert queued.result().outputs[0].name == "output"
    finally:
        stop_server(served.http)
    assert {error.code() for error in refusals} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    for error in refusals:
        assert "queue is full" in error.details()
        trailing = dict(error.trailing_metadata())
        assert int(trailing["retry-after"]) >= 1
        assert int(trailing["grpc-retry-pushback-ms"]) == 1000 * int(trailing["retry-after"])


def _queue_depth(served: Served) -> float:
    with urllib.request.urlopen(f"{served.http.url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("inferstack_queue_depth{"):
                return float(line.split()[-1])
    return -1.0


def test_sigterm_turns_health_not_serving_refuses_new_calls_and_finishes_the_held_one(tmp_path):
    served, entered, gate = _gated(tmp_path, "--drain-listen-s", "0")
    try:
        with grpc.insecure_channel(served.target) as channel:
            stub = stubs.GRPCInferenceServiceStub(channel)
            health = health_stubs.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")
            assert health.Check(check, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
            held = _hold_one(stub, entered)
            served.http.process.send_signal(signal.SIGTERM)
            wait_until(
                lambda: (
                    health.Check(check, timeout=10).status
                    == health_pb2.HealthCheckResponse.NOT_SERVING
                ),
                "gRPC health to turn NOT_SERVING",
                30,
            )
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(_gated_request(1.0), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "draining" in refused.value.details()
            assert "retry-after" in dict(refused.value.trailing_metadata())
            answered: list[pb.ModelInferResponse] = []
            waiter = threading.Thread(target=lambda: answered.append(held.result()))
            waiter.start()
            with open(gate, "wb") as release:
                release.write(b"1")
            waiter.join(60)
        assert [answer.outputs[0].name for answer in answered] == ["output"]
        assert served.http.process.wait(timeout=60) == 0
    finally:
        stop_server(served.http)


def test_health_names_only_its_services(doubler):
    with grpc.insecure_channel(doubler.target) as channel:
        health = health_stubs.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="other"), timeout=10)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
