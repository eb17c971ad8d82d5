"""What `inferstack serve` adds to a batch's compute, measured through a real server on loopback.

The profile's batch points time `predict_batch` through the model-process pipe; a request also
pays the HTTP parse, the JSON decode, the batcher's hand-off and the response encode, all on
the server's event loop. For each batch size b this starts `inferstack serve` with
`max_batch_size = preferred = b` and a long queue delay (so exactly b requests make a batch),
then sends bursts of b one-row JSON requests over b keep-alive connections: the median over
bursts of the mean request latency, less the profile's compute p50 at b, is the overhead at b.
A least-squares line through the sizes gives `per_batch + per_request * b`, which the
simulator's replica adds to each batch.

Not in it: the client's own scheduling (the bursts are sent back to back, closed loop), queueing
behind other batches (the simulator models that), and how the overhead grows when the event
loop's core is contended (measured on whatever else the machine runs at the time).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from inferstack.profile import OverheadPoint, ServerOverhead
from inferstack.runtime.protocol.codecs import dumps, tensor_entries

OVERHEAD_BATCH_SIZES: Final = (1, 8, 32)
"""Batch sizes the server path is measured at (those the profile also measured)."""
REQUEST_KIND: Final = "JSON, one row per request, HTTP/1.1 keep-alive over loopback"
SERVED_NAME: Final = "profiled"
LONG_DELAY_MS: Final = 2000.0
"""The queue delay while measuring: a burst of b requests, not the delay, makes the batch."""
READY_TIMEOUT_S: Final = 120.0


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
    `OVERHEAD_BATCH_SIZES` are used, or the smallest and largest measured when none is.
    """
    sizes = [b for b in OVERHEAD_BATCH_SIZES if b in compute_p50_ms] or sorted(
        {min(compute_p50_ms), max(compute_p50_ms)}
    )
    payload = request_bytes(row)
    points = []
    for size in sizes:
        latency = _burst_latency_ms(
            uri, size, payload, threads, device, model_process, seconds_per_size
        )
        compute = compute_p50_ms[size]
        points.append(
            OverheadPoint(
                batch_size=size,
                request_latency_ms=round(latency, 3),
                compute_ms=compute,
                overhead_ms=round(latency - compute, 3),
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


def _burst_latency_ms(
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
        "--max-queue-delay-ms", str(LONG_DELAY_MS), "--max-queue-size", str(max(64, 2 * size)),
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
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(size)]
        try:
            for connection in connections:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _burst(connections, payload)  # connections and first batch warm
            means: list[float] = []
            began = time.perf_counter()
            while len(means) < 20 or time.perf_counter() - began < seconds:
                means.append(float(np.mean(_burst(connections, payload))))
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
    return float(np.median(means)) * 1000


def _burst(connections: list[socket.socket], payload: bytes) -> list[float]:
    """Send one request on every connection, then read every answer: seconds per request."""
    sent = []
    for connection in connections:
        sent.append(time.perf_counter())
        connection.sendall(payload)
    return [_read_answer(connection) - at for connection, at in zip(connections, sent, strict=True)]


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
    url = f"http://127.0.0.1:{port}/v2/health/ready"
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
