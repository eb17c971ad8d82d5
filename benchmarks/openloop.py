"""An open-loop HTTP client that keeps its schedule, run as its own process pinned to a core.

Two implementations of one contract (a schedule of due times and servers in; per request the
time it left, the time its answer was complete, its status out): `openloop.c`, compiled here
from source by `compile_client` and driven by `run_compiled` (the fidelity benchmark's default),
and the Python client below (`--client python`). The fidelity benchmark runs both on the same
schedule in every run and reports each one's late-send share side by side.

Why not wrk: wrk is closed loop (each connection waits for its answer), so a slow server slows
the client and hides its queueing (coordinated omission); wrk2 schedules sends at a constant
rate but is not packaged here, and neither replays a given schedule (Poisson arrivals, a step).
Why not asyncio: its timers wait on epoll with millisecond resolution, so sends leave up to a
millisecond late before any other delay.

So two threads in one process: a sender that sleeps with `time.sleep` (nanosleep, about 0.1 ms
slack) until each request's due time and writes it on an idle keep-alive connection to its
server (opening another when none is idle: open loop, never waiting for an answer), and a
receiver that waits on epoll for answers and stamps each when its last byte is read. The GIL
switch interval is cut to 50 us so the sender is not held behind the receiver's parsing.
Latency counts from the due time, so a late send is charged to the measurement, and every send
records how late it left: a run where more than 1 % left over 1 ms late is invalid.

    taskset -c 1 python benchmarks/openloop.py --schedule in.npz --ports 8001,8002 \\
        --request body.http --out out.npz

`in.npz` holds `due` (seconds from the start, sorted) and `pick` (index into --ports); `out.npz`
gets `sent` and `done` (seconds from the start; done is NaN when no answer came) and `status`
(HTTP status, 0 when the connection failed).
"""

from __future__ import annotations

import argparse
import collections
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from inferstack.runtime.server_overhead import saturate

LATE_S: Final = 0.001
"""A send leaving more than this after its due time is late."""
INVALID_LATE_SHARE: Final = 0.01
"""A run with more late sends than this is invalid."""
START_DELAY_S: Final = 0.5
SWITCH_INTERVAL_S: Final = 50e-6
DRAIN_TIMEOUT_S: Final = 30.0
C_SOURCE: Final = Path(__file__).resolve().with_name("openloop.c")
COMPILERS: Final = ("cc", "gcc", "clang")
"""Tried in this order after `$CC`."""


class NoCompiler(RuntimeError):
    """No C compiler to build the compiled client with."""


def compile_client(folder: Path) -> Path:
    """Build `openloop.c` into `folder` with the machine's C compiler; the binary's path.

    Raises `NoCompiler` (naming what to install, or the Python client to use instead) when none
    is found, and RuntimeError with the compiler's output when the build fails.
    """
    names = [os.environ["CC"]] if os.environ.get("CC") else []
    found = next((path for name in [*names, *COMPILERS] if (path := shutil.which(name))), None)
    if found is None:
        raise NoCompiler(
            "the compiled open-loop client needs a C compiler (tried $CC, "
            + ", ".join(COMPILERS)
            + "): install one (apt-get install gcc) or pass --client python"
        )
    binary = folder / "openloop-c"
    command = [found, "-O2", "-Wall", "-pthread", "-o", str(binary), str(C_SOURCE)]
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        raise RuntimeError(f"building {C_SOURCE.name} with {found} failed:\n{built.stderr}")
    return binary


def timer_floor(binary: Path, seconds: float, prefix: list[str] | None = None) -> float:
    """The share of a bare 1-ms timer loop's wake-ups more than `LATE_S` late (the compiled
    client's `--timer` mode): the machine's floor under any client at that core and priority."""
    ran = subprocess.run(
        [*(prefix or []), str(binary), "--timer", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(ran.stdout.split(",")[1].split("%")[0]) / 100


def run_compiled(
    binary: Path,
    ports: list[int],
    payload: bytes,
    due: np.ndarray,
    pick: np.ndarray,
    *,
    prefix: list[str] | None = None,
    warm_connections: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sent, done, status) of the compiled client on this schedule, as `OpenLoopClient.run`.

    `prefix` wraps the command (taskset, chrt). `done` is NaN where no answer came.
    """
    with tempfile.TemporaryDirectory() as folder:
        schedule, request, out = (Path(folder, name) for name in ("due.txt", "req", "out.csv"))
        np.savetxt(schedule, np.column_stack([due, pick]), fmt=["%.9f", "%d"])
        request.write_bytes(payload)
        command = [str(binary), str(schedule), ",".join(map(str, ports)), str(request), str(out)]
        ran = subprocess.run(
            [*(prefix or []), *command, str(warm_connections)],
            capture_output=True,
            text=True,
            check=False,
        )
        if ran.returncode != 0:
            raise RuntimeError(f"the compiled client failed ({ran.returncode}): {ran.stderr}")
        table = np.loadtxt(out, delimiter=",", skiprows=1, ndmin=2)
    sent, done, status = table[:, 2], table[:, 3], table[:, 4].astype(np.int32)
    return sent, done, status


@dataclass
class _Connection:
    sock: socket.socket
    port_index: int
    request: int = -1
    buffer: bytearray = field(default_factory=bytearray)


class OpenLoopClient:
    """Sends `payload` to `ports[pick[i]]` at `due[i]`; stamps when each answer is complete."""

    def __init__(self, ports: list[int], payload: bytes, *, warm_connections: int = 16) -> None:
        self.ports = ports
        self.payload = payload
        self.epoll = select.epoll()
        self.by_fd: dict[int, _Connection] = {}
        self.idle: list[collections.deque[_Connection]] = [collections.deque() for _ in ports]
        for index in range(len(ports)):
            for _ in range(warm_connections):
                self.idle[index].append(self._open(index))

    def _open(self, port_index: int) -> _Connection:
        sock = socket.create_connection(("127.0.0.1", self.ports[port_index]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        connection = _Connection(sock, port_index)
        self.by_fd[sock.fileno()] = connection
        self.epoll.register(sock.fileno(), select.EPOLLIN)
        return connection

    def run(self, due: np.ndarray, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sent, done, status) per request, times in seconds from the schedule's start."""
        count = len(due)
        sent = np.full(count, np.nan)
        done = np.full(count, np.nan)
        status = np.zeros(count, dtype=np.int32)
        start = time.perf_counter() + START_DELAY_S
        finished = threading.Event()
        receiver = threading.Thread(
            target=self._receive, args=(start, done, status, finished, count), daemon=True
        )
        receiver.start()
        _prioritise_sender()  # after the start: the receiver keeps the priority it was given
        for index in range(count):
            wait = start + float(due[index]) - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            port_index = int(pick[index])
            idle = self.idle[port_index]
            connection = idle.popleft() if idle else self._open(port_index)
            connection.request = index
            sent[index] = time.perf_counter() - start
            try:
                connection.sock.send(self.payload)  # small: fits the socket buffer at once
            except OSError:
                self._fail(connection, done, status, start)
        finished.wait(timeout=DRAIN_TIMEOUT_S + float(due[-1] if count else 0) + 10)
        return sent, done, status

    def _fail(
        self, connection: _Connection, done: np.ndarray, status: np.ndarray, start: float
    ) -> None:
        if connection.request >= 0:
            status[connection.request] = 0
            done[connection.request] = time.perf_counter() - start
        fd = connection.sock.fileno()
        if fd in self.by_fd:
            self.epoll.unregister(fd)
            del self.by_fd[fd]
        connection.sock.close()

    def _receive(
        self,
        start: float,
        done: np.ndarray,
        status: np.ndarray,
        finished: threading.Event,
        count: int,
    ) -> None:
        answered = 0
        while answered < count:
            for fd, _ in self.epoll.poll(0.1):
                connection = self.by_fd.get(fd)
                if connection is None:
                    continue
                try:
                    chunk = connection.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    if connection.request >= 0:
                        answered += 1
                    self._fail(connection, done, status, start)
                    continue
                connection.buffer += chunk
                code = _complete(connection.buffer)
                if code is None:
                    continue
                now = time.perf_counter() - start
                done[connection.request] = now
                status[connection.request] = code
                connection.request = -1
                connection.buffer.clear()
                answered += 1
                self.idle[connection.port_index].append(connection)
        finished.set()


def _complete(buffer: bytearray) -> int | None:
    """The status of the response in `buffer` once all of it is there, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    position = head.find(b"content-length:")
    length = 0
    if position >= 0:
        length = int(head[position + 15 :].split(b"\r\n", 1)[0])
    if len(buffer) < end + 4 + length:
        return None
    return int(head.split(b" ", 2)[1])


def _prioritise_sender() -> None:
    """Under SCHED_FIFO, run the receiver thread one priority below the sender (this thread).

    Both share one core; at equal FIFO priority a sender woken for its next send would wait
    for the receiver to block, which it does not while a batch of answers comes in.
    """
    if os.sched_getscheduler(0) != os.SCHED_FIFO:
        return
    priority = os.sched_getparam(0).sched_priority
    os.sched_setparam(0, os.sched_param(priority + 1))


def late_share(due: np.ndarray, sent: np.ndarray) -> float:
    """The share of sends that left more than `LATE_S` after they were due."""
    return float(np.mean((sent - due) > LATE_S)) if len(due) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedule", type=Path, help="due/pick arrays (open loop)")
    parser.add_argument("--ports", required=True, help="comma-separated server ports")
    parser.add_argument("--request", type=Path, required=True, help="the raw HTTP request")
    parser.add_argument("--out", type=Path, help="sent/done/status arrays (open loop)")
    parser.add_argument(
        "--closed",
        type=int,
        help="instead: this many requests in flight per port for 5 s (after 1 s of warm-up); "
        "prints the answers per second",
    )
    args = parser.parse_args()
    ports = [int(port) for port in args.ports.split(",")]
    if args.closed:
        connections = [
            socket.create_connection(("127.0.0.1", port))
            for port in ports
            for _ in range(args.closed)
        ]
        saturate(connections, args.request.read_bytes(), 1.0)
        answers, seconds = saturate(connections, args.request.read_bytes(), 5.0)
        print(f"{answers / seconds:.1f} answers/s closed loop")
        return
    if args.schedule is None or args.out is None:
        parser.error("--schedule and --out are required unless --closed is given")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    schedule = np.load(args.schedule)
    client = OpenLoopClient(ports, args.request.read_bytes())
    sent, done, status = client.run(schedule["due"], schedule["pick"])
    np.savez(args.out, sent=sent, done=done, status=status)
    share = late_share(schedule["due"], sent)
    print(f"{len(sent)} sends, {share:.2%} more than 1 ms late")


if __name__ == "__main__":
    main()
