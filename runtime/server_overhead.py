"""What `inferstack serve` adds to a batch's compute, measured through a real server on loopback.

The profile's batch points time `predict_batch` through the model-process pipe; a request also
pays the HTTP parse, the JSON decode, the batcher's hand-off and the response encode, on the
server's event loop. What the simulator needs is how long a batch occupies a replica, so for
each batch size b this starts `inferstack serve` with `max_batch_size = preferred = b` and a
long queue delay, and keeps 2b one-row JSON requests in flight over 2b keep-alive connections
(each answer is followed at once by the next request on its connection): every batch is then
full, and the next b requests are decoded while a batch computes, as under load. The time per
batch, b over the answers per second (the median of three intervals), less the profile's
compute p50 at b, is the overhead at b; a least-squares line through the sizes gives
`per_batch + per_request * b`, which the simulator's replica adds to each batch.

Not in it: a lightly loaded server's latency (a lone request's decode and encode are not
overlapped with another batch; measured here at batch 1 that is within about a millisecond),
the variance of the path around its line, and how the overhead grows when the event loop's
core is contended (measured on whatever else the machine runs at the time).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from inferstack.contract.pods import READY_PATH
from inferstack.profile import OverheadPoint, ServerOverhead
from inferstack.runtime.protocol.codecs import dumps, tensor_entries

OVERHEAD_BATCH_SIZES: Final = (1, 8, 32)
"""Batch sizes the server path is measured at (those the profile also measured)."""
REQUEST_KIND: Final = (
    "JSON, one row per request, 2 x batch size kept in flight, HTTP/1.1 keep-alive over loopback"
)
SERVED_NAME: Final = "profiled"
LONG_DELAY_MS: Final = 2000.0
"""The queue delay while measuring: a burst of b requests, not the delay, makes the batch."""
READY_TIMEOUT_S: Final = 120.0
PARTS: Final = 3
"""Timed intervals per batch size; the overhead is their median."""


def request_bytes(row: Mapping[str, np.ndarray]) -> bytes:
    """One HTTP request carrying `row` (one-row arrays) as a v2 JSON inference body."""
    entries, _, finite = tensor_entries((name, array, False) for name, array in row.items())
    body = dumps({"inputs": entries}, finite)
    head = (
        f"POST /v2/models/{SERVED_NAME}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def measure_server_overhead(
    uri: str,
    row: Mapping[str, np.ndarray],
    compute_p50_ms: Mapping[int, float],
    *,
    threads: int,
    device: str,
    model_process: bool,
    seconds_per_size: float,
) -> ServerOverhead:
    """Bursts through `inferstack serve` at each size of `compute_p50_ms` in the overhead set.

    `compute_p50_ms` maps the measured batch sizes to their compute p50; sizes in
    `OVERHEAD_BATCH_SIZES` are used, or the smallest and largest measured when fewer than two
    of them were.
    """
    sizes = [b for b in OVERHEAD_BATCH_SIZES if b in compute_p50_ms]
    if len(sizes) < 2:
        sizes = sorted({min(compute_p50_ms), max(compute_p50_ms)})
    payload = request_bytes(row)
    points = []
    for size in sizes:
        cycle = _batch_cycle_ms(
            uri, size, payload, threads, device, model_process, seconds_per_size
        )
        compute = compute_p50_ms[size]
        points.append(
            OverheadPoint(
                batch_size=size,
                batch_cycle_ms=round(cycle, 3),
                compute_ms=compute,
                overhead_ms=round(cycle - compute, 3),
            )
        )
    per_batch, per_request = fit_line([(p.batch_size, p.overhead_ms) for p in points])
    return ServerOverhead(
        per_request_ms=round(per_request, 4),
        per_batch_ms=round(per_batch, 4),
        points=points,
        request=REQUEST_KIND,
    )


def fit_line(points: Sequence[tuple[int, float]]) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line, each clamped at 0 (a cost is never negative).

    One point: all of it is per batch.
    """
    if len(points) == 1:
        return max(0.0, points[0][1]), 0.0
    sizes = np.array([p[0] for p in points], dtype=np.float64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    slope, intercept = np.polyfit(sizes, values, 1)
    if slope < 0:  # flat in b: the mean is all per batch
        return max(0.0, float(values.mean())), 0.0
    if intercept < 0:  # through the origin: all per request
        return 0.0, max(0.0, float((sizes @ values) / (sizes @ sizes)))
    return float(intercept), float(slope)


def _batch_cycle_ms(
    uri: str,
    size: int,
    payload: bytes,
    threads: int,
    device: str,
    model_process: bool,
    seconds: float,
) -> float:
    port = _free_port()
    command = [
        sys.executable, "-m", "inferstack.cli", "serve",
        "--model", uri, "--model-name", SERVED_NAME, "--port", str(port),
        "--device", device, "--torch-threads", str(threads),
        "--model-process", "true" if model_process else "false",
        "--max-batch-size", str(size), "--preferred-batch-sizes", str(size),
        "--max-queue-delay-ms", str(LONG_DELAY_MS), "--max-queue-size", str(max(64, 4 * size)),
        "--host", "127.0.0.1", "--grpc-port", "0",
    ]  # fmt: skip
    # The server imports a handler module from where this process found it.
    path = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
    process = subprocess.Popen(
        command,
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(port, process)
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(2 * size)]
        try:
            for connection in connections:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            saturate(connections, payload, max(0.5, seconds / 4))  # warm
            # Three thirds, and their median: one interval disturbed by the machine's other load
            # (a shared machine stalls for tens of ms now and then) does not move the figure.
            cycles = []
            for _ in range(PARTS):
                answers, elapsed = saturate(connections, payload, seconds / PARTS)
                cycles.append(size * elapsed / answers * 1000)
        finally:
            for connection in connections:
                connection.close()
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    return float(np.median(cycles))


def saturate(connections: list[socket.socket], payload: bytes, seconds: float) -> tuple[int, float]:
    """Keep a request in flight on every connection for `seconds`: (answers, seconds taken).

    Connections may lead to several servers (the fidelity benchmark's closed-loop capacity).

    Ends by collecting every outstanding answer, so the connections are idle again.
    """
    for connection in connections:
        connection.sendall(payload)
    began = time.perf_counter()
    answers = 0
    pending = set(connections)
    while pending:
        ready, _, _ = select.select(list(pending), [], [], READY_TIMEOUT_S)
        if not ready:
            raise RuntimeError("the server stopped answering while profiling it")
        for connection in ready:
            _read_answer(connection)
            answers += 1
            if time.perf_counter() - began < seconds:
                connection.sendall(payload)
            else:
                pending.discard(connection)
    return answers, time.perf_counter() - began


def _read_answer(connection: socket.socket) -> float:
    """Read one HTTP response; the time it was complete."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection while profiling it")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection while profiling it")
        body += chunk
    if status != b"200":
        raise RuntimeError(f"the server answered {status.decode()} while profiling: {body[:200]!r}")
    return time.perf_counter()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://127.0.0.1:{port}{READY_PATH}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, stderr = process.communicate()
            raise RuntimeError(
                f"inferstack serve exited with {process.returncode} while profiling the server "
                f"path: {stderr.decode(errors='replace')[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"inferstack serve was not ready after {READY_TIMEOUT_S:.0f}s")
