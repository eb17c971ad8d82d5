"""The front door with two acceptors: real processes, real sockets on loopback.

Which acceptor holds a connection is read from the metrics files the processes write
(prometheus_client's multiprocess mode): each acceptor's `open_connections` gauge is in a file
named after its pid, beside the model side's own (whose pid is the server's).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client.multiprocess import MultiProcessCollector

from tests.processes import is_gone, model_processes
from tests.runtime.handlers import GATE_VALUE
from tests.runtime.serving import (
    Server,
    free_port,
    http_status,
    post_json,
    row_body,
    start_server,
    stop_server,
    wait_until,
)

pytestmark = pytest.mark.integration

MAX_BATCH = 8
DELAY_MS = 1000
"""Long enough that concurrent requests from both acceptors always meet in one batch."""


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, int]]:
    metrics = tmp_path_factory.mktemp("metrics")
    grpc_port = free_port()
    server = start_server(
        "--model",
        "builtin://mlp",
        "--acceptors",
        "2",
        "--grpc-port",
        str(grpc_port),
        "--max-batch-size",
        str(MAX_BATCH),
        "--max-queue-delay-ms",
        str(DELAY_MS),
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)},
    )
    yield server, metrics, grpc_port
    stop_server(server)


def open_connections_by_acceptor(server: Server, metrics: Path) -> dict[int, float]:
    """Each acceptor's open HTTP connections, from its own metrics file."""
    held = {}
    for path in metrics.glob("gauge_livesum_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if pid == server.process.pid:
            continue
        for metric in MultiProcessCollector.merge([str(path)], accumulate=False):
            for sample in metric.samples:
                if sample.name == "inferstack_http_open_connections":
                    held[pid] = sample.value
    return held


def connections_on_both(
    server: Server, metrics: Path, count: int, *, others: int = 0
) -> list[http.client.HTTPConnection]:
    """`count` open connections, at least one on each acceptor.

    The kernel hashes each new connection to one acceptor, so connections are opened one at a
    time, each placed by the acceptor whose count rose, until both have one; the extras are
    closed. `others`: connections of the test's own that stay open meanwhile (the server
    must first have forgotten every earlier one).
    """
    wait_until(
        lambda: sum(open_connections_by_acceptor(server, metrics).values()) == others,
        "earlier connections to be closed",
        30,
    )
    placed: dict[int, list[http.client.HTTPConnection]] = {}
    while len(placed) < 2 or sum(len(held) for held in placed.values()) < count:
        assert sum(len(held) for held in placed.values()) < 64, "every connection on one acceptor"
        before = open_connections_by_acceptor(server, metrics)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.connect()
        risen: list[int] = []

        def rose(before: dict[int, float] = before, risen: list[int] = risen) -> bool:
            now = open_connections_by_acceptor(server, metrics)
            risen[:] = [pid for pid, value in now.items() if value > before.get(pid, 0)]
            return bool(risen)

        wait_until(rose, "an acceptor to count the new connection", 30)
        placed.setdefault(risen[0], []).append(connection)
    firsts = [held[0] for held in placed.values()]
    rest = [connection for held in placed.values() for connection in held[1:]]
    keep = count - len(firsts)
    for extra in rest[keep:]:
        extra.close()
    return firsts + rest[:keep]


def infer_on(connection: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def metric(server: Server, line_start: str) -> float:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(line_start):
                return float(line.split()[-1])
    raise AssertionError(f"no {line_start} in /metrics")


def concurrently(calls: list) -> list:
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        start.wait()
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_requests_land_on_both_acceptors_and_every_one_succeeds(door):
    server, metrics, grpc_port = door
    connections = connections_on_both(server, metrics, 16)
    rows = np.random.default_rng(1).standard_normal((16, 1, 512), dtype=np.float32)
    path = "/v2/models/mlp/infer"
    answers = concurrently(
        [
            lambda c=connection, x=row: infer_on(c, path, row_body(x))
            for connection, row in zip(connections, rows, strict=True)
        ]
    )
    assert [status for status, _ in answers] == [200] * 16
    for connection in connections:
        connection.close()
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    assert client.is_server_ready()
    tensor = triton_grpc.InferInput("input", [1, 512], "FP32")
    tensor.set_data_from_numpy(rows[0])
    grpc_answer = client.infer("mlp", [tensor]).as_numpy("output")
    http_answer = json.loads(answers[0][1])["outputs"][0]["data"]
    np.testing.assert_allclose(grpc_answer.ravel(), http_answer, rtol=1e-5, atol=1e-6)


def test_a_batch_of_rows_from_both_acceptors_returns_each_row_to_its_caller(door):
    server, metrics, _ = door
    connections = connections_on_both(server, metrics, MAX_BATCH)
    rows = np.random.default_rng(2).standard_normal((MAX_BATCH, 1, 512), dtype=np.float32)
    path = "/v2/models/mlp/infer"
    batches_before = metric(server, 'inferstack_batch_size_count{model="mlp"}')
    rows_before = metric(server, 'inferstack_batch_size_sum{model="mlp"}')
    together = concurrently(
        [
            lambda c=connection, x=row: infer_on(c, path, row_body(x))
            for connection, row in zip(connections, rows, strict=True)
        ]
    )
    # One batch held every row, from both acceptors' connections.
    assert metric(server, 'inferstack_batch_size_count{model="mlp"}') == batches_before + 1
    assert metric(server, 'inferstack_batch_size_sum{model="mlp"}') == rows_before + MAX_BATCH
    for connection in connections:
        connection.close()
    for (status, payload), row in zip(together, rows, strict=True):
        assert status == 200, payload
        alone_status, _, alone = post_json(server.url + path, row_body(row))
        assert alone_status == 200
        batched = json.loads(payload)["outputs"][0]["data"]
        np.testing.assert_allclose(
            batched, json.loads(alone)["outputs"][0]["data"], rtol=1e-5, atol=1e-6
        )


def test_metrics_are_the_sum_over_the_acceptors(door):
    server, metrics, _ = door
    connections = connections_on_both(server, metrics, 6)
    success_before = metric(server, 'inferstack_requests_total{model="mlp",outcome="success"}')
    for connection in connections[:2]:
        status, _ = infer_on(
            connection, "/v2/models/mlp/infer", row_body(np.ones((1, 512), np.float32))
        )
        assert status == 200
    wait_until(
        lambda: sum(open_connections_by_acceptor(server, metrics).values()) == 6,
        "the extra connections to be closed",
        30,
    )
    held = open_connections_by_acceptor(server, metrics)
    assert all(value >= 1 for value in held.values()), held
    # The scrape's own connection is open while it is answered: one more than the six.
    assert metric(server, 'inferstack_http_open_connections{model="mlp"}') == 7
    assert (
        metric(server, 'inferstack_requests_total{model="mlp",outcome="success"}')
        == success_before + 2
    )
    for connection in connections:
        connection.close()


def test_queue_full_is_global_and_sigterm_drains_every_acceptor(tmp_path):
    entered, gate = tmp_path / "entered", tmp_path / "gate"
    os.mkfifo(entered)
    os.mkfifo(gate)
    metrics = tmp_path / "metrics"
    server = start_server(
        "--model",
        "tests.runtime.handlers:Gated",
        "--acceptors",
        "2",
        "--grpc-port",
        "0",
        "--max-batch-size",
        "1",
        "--max-queue-size",
        "1",
        "--max-queue-delay-ms",
        "0",
        "--drain-listen-s",
        "0",
        env={
            "INFERSTACK_TEST_ENTERED": str(entered),
            "INFERSTACK_TEST_GATE": str(gate),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        },
    )
    infer = "/v2/models/gated/infer"
    held = np.full((1, 4), GATE_VALUE, np.float32)
    queued = np.arange(4, dtype=np.float32).reshape(1, 4)
    answers: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def send(key: str, values: np.ndarray) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: answers.__setitem__(key, post_json(server.url + infer, row_body(values)))
        )
        thread.start()
        return thread

    try:
        first = send("held", held)
        with open(entered, "rb") as signal_in:  # Blocks until the model holds the request.
            assert signal_in.read(1) == b"1"
        second = send("queued", queued)
        wait_until(
            lambda: metric(server, 'inferstack_queue_depth{model="gated"}') == 1,
            "the second request to be queued",
            30,
        )
        # Whichever acceptor a connection lands on, the one queue is full.
        connections = connections_on_both(server, metrics, 6, others=2)  # Held and queued.
        for connection in connections:
            status, payload = infer_on(connection, infer, row_body(queued))
            assert status == 429, payload
            assert "queue is full" in json.loads(payload)["error"]

        server.process.send_signal(signal.SIGTERM)
        wait_until(
            lambda: http_status(f"{server.url}/v2/health/ready") == 503, "readiness to drop", 30
        )
        for connection in connections:  # Every acceptor is unready, not only the one asked.
            connection.request("GET", "/v2/health/ready")
            response = connection.getresponse()
            response.read()
            assert response.status == 503
        assert http_status(f"{server.url}/v2/health/live") == 200
        code, headers, payload = post_json(server.url + infer, row_body(queued))
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
        assert json.loads(payload)["outputs"][0]["data"] == values.ravel().tolist()


def test_sigterm_under_load_drops_no_request():
    server = start_server(
        "--model",
        "builtin://mlp",
        "--acceptors",
        "2",
        "--grpc-port",
        "0",
        "--max-queue-delay-ms",
        "2",
        "--drain-listen-s",
        "1",
    )
    body = row_body(np.ones((1, 512), np.float32))
    outcomes: list[list[int | str]] = [[] for _ in range(8)]
    started = threading.Barrier(9)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        first = True
        while True:
            try:
                status, _ = infer_on(connection, "/v2/models/mlp/infer", body)
            except ConnectionRefusedError:
                return  # The port closed: nothing was sent, nothing dropped.
            except (OSError, http.client.HTTPException) as error:
                outcomes[index].append(f"{type(error).__name__}: {error}")
                return
            outcomes[index].append(status)
            if first:
                first = False
                started.wait()
            if status != 200:
                return

    threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
    try:
        for thread in threads:
            thread.start()
        started.wait(60)
        server.process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(120)
        assert server.process.wait(timeout=60) == 0
    finally:
        stop_server(server)
    answered = [outcome for results in outcomes for outcome in results]
    dropped = [outcome for outcome in answered if isinstance(outcome, str)]
    assert dropped == [], dropped
    assert set(answered) <= {200, 503}
    assert answered.count(200) >= 8


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v2/models/mlp/infer", b"{oops", 400, "not valid JSON"),
        ("/v2/models/mlp/infer", row_body(np.zeros((1, 3), np.float32)), 400, "input 'input'"),
        ("/v2/models/bert/infer", row_body(np.zeros((1, 512), np.float32)), 404, "unknown model"),
        ("/v2/models/mlp/infer", row_body(np.zeros((9, 512), np.float32)), 400, "max_batch_size"),
    ],
)
def test_bad_requests_get_the_same_4xx_through_an_acceptor(door, path, body, status, fragment):
    server, _, _ = door
    code, _, payload = post_json(server.url + path, body)
    assert code == status
    assert fragment in json.loads(payload)["error"]


def test_a_model_request_the_model_fails_on_gets_its_answer_through_the_link(tmp_path):
    server = start_server(
        "--model",
        "tests.runtime.handlers:Picky",
        "--acceptors",
        "2",
        "--grpc-port",
        "0",
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    try:
        path = f"{server.url}/v2/models/picky/infer"
        good = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        ).encode()
        bad = json.dumps(
            {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [-1, 2]}]}
        ).encode()
        assert post_json(path, good)[0] == 200
        code, headers, payload = post_json(path, bad)
        assert code == 422
        assert "negative input" in json.loads(payload)["error"]
        assert "x-request-id" in headers
    finally:
        stop_server(server)


def _acceptor_pids(server: Server, metrics: Path) -> set[int]:
    return set(open_connections_by_acceptor(server, metrics))


def test_a_dead_model_process_ends_every_acceptor_with_exit_1(tmp_path):
    server = start_server(
        "--model",
        "tests.runtime.handlers:Picky",
        "--acceptors",
        "2",
        "--grpc-port",
        "0",
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    try:
        acceptors = _acceptor_pids(server, tmp_path)
        assert len(acceptors) == 2
        (model,) = set(model_processes(server.process.pid)) - acceptors
        os.kill(model, signal.SIGKILL)
        assert server.process.wait(timeout=60) == 1
        for pid in acceptors:
            wait_until(lambda p=pid: is_gone(p), "the acceptors to exit", 30)
    finally:
        stop_server(server)
    assert b"a model process exited unexpectedly" in server.process.stderr.read()


def test_a_dead_acceptor_drains_the_server_and_exits_1(tmp_path):
    server = start_server(
        "--model",
        "builtin://mlp",
        "--acceptors",
        "2",
        "--grpc-port",
        "0",
        "--drain-listen-s",
        "0",
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
    )
    try:
        first, second = sorted(_acceptor_pids(server, tmp_path))
        os.kill(first, signal.SIGKILL)
        assert server.process.wait(timeout=60) == 1
        wait_until(lambda: is_gone(second), "the other acceptor to exit", 30)
    finally:
        stop_server(server)
    assert b"exited unexpectedly" in server.process.stderr.read()


def test_a_port_in_use_is_refused_with_exit_2_not_shared():
    # SO_REUSEPORT would let the acceptors join another server's port of the same user.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, "-m", "inferstack.cli", "serve", "--model", "builtin://mlp"]
            + ["--host", "127.0.0.1", "--port", str(port), "--acceptors", "2", "--grpc-port", "0"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in completed.stderr.decode()
