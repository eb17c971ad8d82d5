"""What `inferstack serve` adds to a batch's compute, measured through a real server on loopback.

The profile's batch points time `predict_batch` through the model-process pipe; a request also
pays the HTTP parse, the JSON decode, the batcher's hand-off and the response encode, on the
server's event loop. What the simulator needs is how long a batch occupies a replica, so for
each batch size b this starts `inferstack serve` with `max_batch_size = preferred = b` and a
long queue delay, and keeps 2b one-row JSON requests in flight over 2b keep-alive connections
(each answer is followed at once by the next request on its connection): every batch is then
full, and the next b requests are decoded while a batch computes, as under load.

The overhead at b is the batch cycle less the profile's compute p50 at b (what the simulator
adds the overhead to, so that the simulated batch at a measured size takes the measured cycle).
The cycle is timed between the ends of consecutive batches as the client reads them, in one
continuous run cut into `PARTS` parts (no idle start and drain per part); the part with the
median cycle gives the size's point, so a part disturbed by the machine's other load does not
move it. Five sizes (`OVERHEAD_BATCH_SIZES`, where measured) and a Theil-Sen line (`fit_line`)
give `per_batch + per_request * b`, which the simulator's replica adds to each batch: one size
off its line does not tilt it. (Three intervals, each started idle, and a least-squares line
through three sizes put the fixed-time model's b=32 overhead 0.9 ms apart in two quiet runs.)

The same run gives the answer spacing at b (profile format 4): the median over batches of the
time between a batch's first and last answer as they reach the client (the kernel's receive
times, `SO_TIMESTAMPNS`), over b - 1. The server resolves a batch's b requests together, takes
its next batch, and then encodes and writes the b answers one after another on its event loop,
so the i-th answer (from 0) leaves about (i + 1) spacings after the batch's results came back.
The cycle does not see it (the replica computes its next batch meanwhile) but every request's
latency does: traced per request through the fixed-time model on this 2-core machine, at 90 %
of one replica's capacity the answer of position i of a 32-row batch was written 0.93 + 0.116 i
ms after the batch resolved (0.26 ms + 0.2 i at 30 %, 4-row batches), which the simulator left
out (its p50 read 7-10 % low at 90 %).

Why not the server's own compute histogram instead of the profile's p50: inside the server the
model's batch reads longer (the fixed-time model's b=32 batch 0.6 to 0.8 ms over the profile's
p50), most likely the worker thread that waits on the model waiting for the GIL while the event
loop decodes the next batch. Whatever it is, the server adds it, and the simulator adds the
overhead to the profile's compute, so it belongs in the overhead.

Not in it: the time the answers of a batch wait while the event loop dispatches the next
batch first (about 0.5 ms at b = 32 under load; the client cannot tell it from the cycle), the
time a request waits to be read and decoded while the loop is busy, a lightly loaded server's
latency (a lone request's decode and encode are not overlapped with another batch; measured
here at batch 1 that is within about a millisecond), the variance of the path around its line,
how the overhead grows when the event loop's core is contended (measured on whatever else the
machine runs at the time; two replicas on this machine's two cores took 27.6 ms per 32-row
batch where one alone took 26.5).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np

from inferstack.contract.pods import READY_PATH
from inferstack.profile import OverheadPoint, ServerOverhead
from inferstack.runtime.protocol.codecs import dumps, tensor_entries

if TYPE_CHECKING:  # A type only: this module loads no model code.
    from inferstack.runtime.optimize import OptimizeMode

OVERHEAD_BATCH_SIZES: Final = (1, 4, 8, 16, 32)
"""Batch sizes the server path is measured at (those the profile also measured)."""
REQUEST_KIND: Final = (
    "JSON, one row per request, 2 x batch size kept in flight, HTTP/1.1 keep-alive over loopback"
)
SERVED_NAME: Final = "profiled"
LONG_DELAY_MS: Final = 2000.0
"""The queue delay while measuring: a burst of b requests, not the delay, makes the batch."""
READY_TIMEOUT_S: Final = 120.0
PARTS: Final = 7
"""Parts per batch size (odd: one of them is the median); the size's point is the median part."""
PART_BATCHES: Final = 5
"""Fewest batches in a part, whatever `seconds_per_size` is."""
SO_TIMESTAMPNS: Final = 35
"""Linux's socket option (and control message type) for the kernel's receive time of the data
read, as a timespec (`SO_TIMESTAMPNS_OLD` in include/uapi/asm-generic/socket.h; Python's socket
module does not name it). The answer spacing is timed by it: a Python client that falls behind
reads a batch's answers in a bunch, and in one run timing them as it read them put the spacing
5 to 35 % lower (0.079 ms against 0.083 at b = 32, 0.057 against 0.089 at b = 4)."""
_TIMESPEC: Final = struct.Struct("qq")


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
    optimize: OptimizeMode = "auto",
) -> ServerOverhead:
    """Bursts through `inferstack serve` at each size of `compute_p50_ms` in the overhead set.

    `compute_p50_ms` maps the measured batch sizes to their compute p50; sizes in
    `OVERHEAD_BATCH_SIZES` are used, or the smallest and largest measured when fewer than two
    of them were. `optimize` is passed to the server: its graph is the one the compute was
    timed on.
    """
    sizes = [b for b in OVERHEAD_BATCH_SIZES if b in compute_p50_ms]
    if len(sizes) < 2:
        sizes = sorted({min(compute_p50_ms), max(compute_p50_ms)})
    payload = request_bytes(row)
    points = []
    for size in sizes:
        answers, arrivals = _answer_times(
            uri, size, payload, threads, device, model_process, seconds_per_size, optimize
        )
        cycle = round(float(np.median(part_cycles_ms(answers[size - 1 :: size]))), 3)
        spacing = answer_spacing_ms(arrivals, size)
        compute = compute_p50_ms[size]
        points.append(
            OverheadPoint(
                batch_size=size,
                batch_cycle_ms=cycle,
                compute_ms=compute,
                overhead_ms=round(cycle - compute, 3),
                answer_spacing_ms=None if spacing is None else round(spacing, 4),
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
    """(intercept, slope) of the Theil-Sen line, each clamped at 0 (a cost is never negative).

    The slope is the median of the slopes between every two sizes and the intercept the median
    of what each point leaves: a least-squares line through five sizes let one size measured
    during a stall of the machine tilt it (and so the overhead at the largest size, which sets
    the simulated capacity). Falling with b: the median is all per batch. A negative intercept:
    through the origin, the median of each point's overhead per request weighted by its size
    (the larger sizes say more about a per-request cost). One point: all of it is per batch.
    """
    if len(points) == 1:
        return max(0.0, points[0][1]), 0.0
    sizes = np.array([p[0] for p in points], dtype=np.float64)
    values = np.array([p[1] for p in points], dtype=np.float64)
    slopes = [
        (values[j] - values[i]) / (sizes[j] - sizes[i])
        for i in range(len(sizes))
        for j in range(i + 1, len(sizes))
        if sizes[j] != sizes[i]
    ]
    slope = float(np.median(slopes)) if slopes else 0.0
    if slope <= 0:  # flat in b: all per batch
        return max(0.0, float(np.median(values))), 0.0
    intercept = float(np.median(values - slope * sizes))
    if intercept < 0:
        return 0.0, max(0.0, weighted_median(values / sizes, sizes))
    return intercept, slope


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """The value below which half of the total weight lies (the lower one at an exact half)."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][int(np.searchsorted(cumulative, cumulative[-1] / 2))])


def _answer_times(
    uri: str,
    size: int,
    payload: bytes,
    threads: int,
    device: str,
    model_process: bool,
    seconds: float,
    optimize: OptimizeMode,
) -> tuple[list[float], list[float]]:
    """Every answer's time through a server batching at `size`, in whole batches after the
    warm-up, as read and as it arrived (`batch_answers`)."""
    port = _free_port()
    command = [
        sys.executable, "-m", "inferstack.cli", "serve",
        "--model", uri, "--model-name", SERVED_NAME, "--port", str(port),
        "--device", device, "--torch-threads", str(threads),
        "--model-process", "true" if model_process else "false", "--optimize", optimize,
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
                _stamp_arrivals(connection)
            answers = batch_answers(connections, payload, size, max(0.5, seconds / 4), seconds)
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
    return answers


def batch_answers(
    connections: list[socket.socket], payload: bytes, size: int, warm_s: float, seconds: float
) -> tuple[list[float], list[float]]:
    """Keep a request in flight on every connection for `warm_s` and then `seconds` more: the
    times (perf_counter) at which answers were read, in whole batches after the warm-up, and
    the times they arrived (the kernel's receive time where `_stamp_arrivals` could ask for it,
    seconds on its own clock; else the time read).

    Every `size` answers make a batch: each batch is full, and the next one's answers cannot
    come before its compute; so answers `size - 1`, `2 * size - 1`, ... end the batches. At
    least `PARTS * PART_BATCHES + 1` batches, whatever `seconds` is.
    """
    for connection in connections:
        connection.sendall(payload)
    times: list[float] = []
    arrivals: list[float] = []
    kept = 0  # batches that ended after the warm-up
    warm_until = time.perf_counter() + warm_s
    until = warm_until + seconds
    while True:
        ready, _, _ = select.select(connections, [], [], READY_TIMEOUT_S)
        if not ready:
            raise RuntimeError("the server stopped answering while profiling it")
        for connection in ready:
            done_at, _, arrived_at = _read_response(connection)
            connection.sendall(payload)
            times.append(done_at)
            arrivals.append(done_at if arrived_at is None else arrived_at)
            if len(times) % size == 0 and done_at >= warm_until:
                kept += 1
        whole = len(times) // size * size
        if kept > PARTS * PART_BATCHES and times[whole - 1] >= until:
            return times[whole - kept * size : whole], arrivals[whole - kept * size : whole]


def answer_spacing_ms(answers: Sequence[float], size: int) -> float | None:
    """The median over whole batches of (last answer - first answer) / (size - 1), in ms: the
    time between consecutive answers of one batch, as they reached the client (None at size 1).

    The server answers a batch's requests one after another on its event loop (each response
    encoded and written in turn), so a batch's last request is answered that much later than
    its first, after the replica has already taken its next batch."""
    if size < 2:
        return None
    whole = len(answers) // size * size
    batches = np.asarray(answers[:whole], dtype=np.float64).reshape(-1, size)
    if not len(batches):
        raise ValueError(f"{len(answers)} answers do not make a batch of {size}")
    return float(np.median((batches[:, -1] - batches[:, 0]) / (size - 1)) * 1000)


def part_cycles_ms(ends: Sequence[float]) -> list[float]:
    """The mean batch cycle (ms) in each of `PARTS` consecutive parts of the batches after the
    first of `ends` (batch end times, seconds): each part from the end of the batch before it."""
    if len(ends) <= PARTS:
        raise ValueError(f"{len(ends)} batch ends cannot make {PARTS} parts")
    bounds = np.linspace(0, len(ends) - 1, PARTS + 1).round().astype(int)
    return [
        (ends[stop] - ends[start]) / (stop - start) * 1000
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
    ]


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
            _read_response(connection)
            answers += 1
            if time.perf_counter() - began < seconds:
                connection.sendall(payload)
            else:
                pending.discard(connection)
    return answers, time.perf_counter() - began


def _stamp_arrivals(connection: socket.socket) -> None:
    """Ask the kernel for each read's receive time (`SO_TIMESTAMPNS`), where it is Linux's."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError):  # then the time read stands in
            connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def _receive(connection: socket.socket) -> tuple[bytes, float | None]:
    """One read: its bytes, and when the kernel received the last of them (None when it did
    not say)."""
    data, ancillary, _, _ = connection.recvmsg(65536, socket.CMSG_SPACE(_TIMESPEC.size))
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) == _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack(value)
            return data, seconds + nanoseconds * 1e-9
    return data, None


def _read_response(connection: socket.socket) -> tuple[float, bytes, float | None]:
    """Read one HTTP response, refused unless 200: (the time it was complete, its body, when
    the kernel received its last bytes if it said)."""
    data, arrived_at = _receive(connection)
    if not data:
        raise RuntimeError("the server closed the connection while profiling it")
    while b"\r\n\r\n" not in data:
        chunk, arrived_at = _receive(connection)
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
        chunk, arrived_at = _receive(connection)
        if not chunk:
            raise RuntimeError("the server closed the connection while profiling it")
        body += chunk
    if status != b"200":
        raise RuntimeError(f"the server answered {status.decode()} while profiling: {body[:200]!r}")
    return time.perf_counter(), body[:length], arrived_at


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
