"""Model instances in child processes, so the model never waits for the event loop's GIL.

Why: with the model on a thread of the server process, each torch operator gives the GIL up
and must win it back from the event loop, which is busy parsing requests; under load a batch
ran about 30% slower than alone (`make bench`, "ms per batch under load"). A child process has
its own interpreter, so the forward pass runs undisturbed, and the server's batch thread only
waits on a pipe, which releases the GIL. Triton's Python backend and TorchServe isolate models
the same way, and a model that crashes takes down its process, not the server.

One `multiprocessing` pipe per instance carries:
- child to server, once: `("ready", signature)` or `("failed", message)`;
- server to child, per batch: `("batch", header, None)` then each array's raw bytes;
- child to server, per batch: `("ok", header, None)` then each output's raw bytes, or
  `("error", message, None)`.
The header lists (name, dtype, shape) per array. Arrays of Python objects (BYTES tensors), and a
result that is not a dict of arrays, travel pickled in place of the header instead.

The raw bytes go straight over the pipe's socket (it is a Unix socket pair), unframed (the header
gave their size): `sendall` from the array's memory, and `recv_into` the buffer the array will
view with MSG_WAITALL, which waits for the whole array in one call without the GIL. Through the
Connection's own framing, a batch came in 64 KiB reads, each taking the GIL back from the event
loop and going through an intermediate buffer.

With `ModelProcessConfig.cpus` (`own_cpus`), each child pins itself to CPUs of its own before
torch starts its threads, and the server keeps the others: the kernel then never runs the
server's event loop, or a load generator beside it, on the model's core in the middle of a batch.

The child ignores SIGINT and SIGTERM (the server or the worker decides when the model stops:
after the drain) and exits when its pipe closes, which also happens if its parent dies. The
worker runs its model the same way; "server" above stands for either.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import queue
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final

import numpy as np
from typing_extensions import override

from inferstack.runtime.failures import TransientModelError
from inferstack.runtime.models import (
    LoadedModel,
    ModelLoadError,
    configure_torch_threads,
    load_model,
)
from inferstack.runtime.optimize import GraphOutcome, OptimizeMode, optimize_and_warm_up
from inferstack.runtime.tensors import TensorSpec

Header = list[tuple[str, str, tuple[int, ...]]]

STOP_TIMEOUT_S: Final = 10.0
"""How long a child gets to exit after its pipe closes before it is killed."""


class ModelProcessError(Exception):
    """The model raised in its process, or the process died; the message says which."""


class ModelProcessDiedError(ModelProcessError, TransientModelError):
    """The model's process died during a batch (a crash, the OOM killer, a signal), as opposed
    to the model raising: whatever was in that batch may be what killed it."""


@dataclass(frozen=True)
class ModelProcessConfig:
    """What each child needs to load its copy of the model."""

    uri: str
    name: str
    device: str
    torch_threads: int
    warm_up_sizes: tuple[int, ...]
    cpus: tuple[tuple[int, ...], ...] = ()
    """CPUs each instance is pinned to, by instance index (`own_cpus`); empty: not pinned."""
    optimize: OptimizeMode = "auto"
    """Whether each child tries the optimized graph (`optimize.optimize_graph`) before warm-up."""


@dataclass(frozen=True)
class CpuPlan:
    """Who runs where when the model processes get CPUs of their own."""

    model: tuple[tuple[int, ...], ...]
    """Each instance's CPUs."""
    server: tuple[int, ...]
    """What is left for the server process (its event loop, batch threads, helpers)."""


def own_cpus(available: Sequence[int], instances: int, threads: int) -> CpuPlan | None:
    """CPUs of their own for `instances` model processes of `threads` torch threads each, from
    the end of `available` (the affinity mask), the rest for the server; None when that would
    leave the server no CPU."""
    ordered = sorted(set(available))
    needed = instances * threads
    if needed >= len(ordered):
        return None
    server, mine = ordered[: len(ordered) - needed], ordered[len(ordered) - needed :]
    model = tuple(tuple(mine[i * threads : (i + 1) * threads]) for i in range(instances))
    return CpuPlan(model, tuple(server))


def pin_process(cpus: Sequence[int]) -> None:
    """Pin every thread of this process to `cpus` (threads started later inherit it from the
    thread that starts them; `sched_setaffinity(0)` alone would move only the calling thread)."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), cpus)
        except ProcessLookupError:  # The thread ended meanwhile.
            continue


@dataclass(frozen=True)
class _Signature:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    platform: str
    device: str
    load_s: float
    warm_up_s: float
    graph: GraphOutcome


# Wire format ---------------------------------------------------------------------------------


def _socket_of(conn: Connection) -> socket.socket:
    """A socket on a copy of `conn`'s descriptor, for the raw array bytes (see the docstring)."""
    return socket.socket(fileno=os.dup(conn.fileno()))


def _send_arrays(conn: Connection, sock: socket.socket, tag: str, arrays: object) -> None:
    if isinstance(arrays, Mapping) and all(
        isinstance(value, np.ndarray) and value.dtype != np.object_ for value in arrays.values()
    ):
        contiguous = {name: np.ascontiguousarray(value) for name, value in arrays.items()}
        header: Header = [
            (name, value.dtype.str, tuple(value.shape)) for name, value in contiguous.items()
        ]
        conn.send((tag, header, None))
        for value in contiguous.values():
            if value.nbytes:
                sock.sendall(value.reshape(-1).view(np.uint8).data)
    else:
        conn.send((tag, None, arrays))


def _receive_arrays(sock: socket.socket, header: Header | None, pickled: Any) -> Any:
    if header is None:
        return pickled
    arrays: dict[str, np.ndarray] = {}
    for name, dtype_str, shape in header:
        dtype = np.dtype(dtype_str)
        # A bytearray, not bytes: torch.from_numpy wants a writable buffer.
        buffer = bytearray(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        _receive_into(sock, buffer)
        arrays[name] = np.frombuffer(buffer, dtype=dtype).reshape(shape)
    return arrays


def _receive_into(sock: socket.socket, buffer: bytearray) -> None:
    """Fill `buffer` from `sock`; EOFError when the other end closed first."""
    view = memoryview(buffer)
    received = 0
    while received < len(view):  # MSG_WAITALL returns short only on a signal or the end.
        count = sock.recv_into(view[received:], 0, socket.MSG_WAITALL)
        if not count:
            raise EOFError("the pipe closed in the middle of an array")
        received += count


# The child -----------------------------------------------------------------------------------


def _child_main(conn: Connection, config: ModelProcessConfig, index: int = 0) -> None:
    """Load, warm up, report the signature, then answer batches until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if config.cpus:
            pin_process(config.cpus[index])
        configure_torch_threads(config.torch_threads)
        started = time.perf_counter()
        model = load_model(config.uri, name=config.name, device=config.device)
        loaded = time.perf_counter()
        # Here, in the process that runs the model: the optimized graph is what it will run.
        graph, warm_up_s = optimize_and_warm_up(model, config.warm_up_sizes, config.optimize)
    except ModelLoadError as error:
        conn.send(("failed", str(error)))  # Already says what to fix.
        return
    except Exception as error:
        conn.send(("failed", f"{type(error).__name__}: {error}"))
        return
    device = str(getattr(model, "device", "cpu"))
    # The loaded model and torch live as long as this process: frozen out of the collector's
    # generations, a full collection no longer walks them (gen-2 pauses of up to 60 ms in a
    # batch's time before; the server does the same once ready).
    gc.collect()
    gc.freeze()
    conn.send(
        (
            "ready",
            _Signature(
                model.inputs,
                model.outputs,
                model.platform,
                device,
                loaded - started,
                warm_up_s,
                graph,
            ),
        )
    )
    sock = _socket_of(conn)
    while True:
        try:
            _, header, pickled = conn.recv()
            inputs = _receive_arrays(sock, header, pickled)
        except (EOFError, OSError):
            return  # The server closed the pipe (or died): nothing more will come.
        try:
            outputs: object = model.predict_batch(inputs)
            _send_arrays(conn, sock, "ok", outputs)
        except Exception as error:
            conn.send(("error", f"{type(error).__name__}: {error}", None))


# The server side -----------------------------------------------------------------------------


class _Instance:
    """One child process and the server's end of its pipe."""

    def __init__(self, config: ModelProcessConfig, index: int) -> None:
        self._config = config
        self._index = index
        self.conn, self.process = self._spawn()
        self.sock = _socket_of(self.conn)

    def _spawn(self) -> tuple[Connection, BaseProcess]:
        context = multiprocessing.get_context("spawn")  # Fork would copy the loop and threads.
        conn, child_conn = context.Pipe()
        process = context.Process(
            target=_child_main,
            args=(child_conn, self._config, self._index),
            name=f"inferstack-model-{self._config.name}-{self._index}",
            daemon=True,
        )
        process.start()
        child_conn.close()  # Only the child holds it now, so its exit shows as EOF here.
        return conn, process

    def respawn(self) -> None:
        """Replace a process that ended with a fresh one, and wait until it has loaded."""
        self.stop()
        self.conn, self.process = self._spawn()
        self.sock = _socket_of(self.conn)
        self.wait_ready()

    def wait_ready(self) -> _Signature:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(STOP_TIMEOUT_S)
            raise ModelLoadError(
                f"the model process exited with code {self.process.exitcode} while loading; "
                "its error is in the output above"
            ) from None
        if message[0] == "failed":
            raise ModelLoadError(message[1])
        signature = message[1]
        assert isinstance(signature, _Signature)
        return signature

    def call(self, inputs: Mapping[str, np.ndarray]) -> Any:
        try:
            _send_arrays(self.conn, self.sock, "batch", inputs)
            tag, header, pickled = self.conn.recv()
            if tag == "error":
                raise ModelProcessError(header)
            return _receive_arrays(self.sock, header, pickled)
        except (EOFError, OSError):
            self.process.join(1.0)
            raise ModelProcessDiedError(
                f"the model process {self.process.pid} exited (code {self.process.exitcode}) "
                "during a batch"
            ) from None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        self.sock.close()
        self.conn.close()
        self.process.join(timeout_s)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class ProcessModel(LoadedModel):
    """`instances` copies of a model, each in its own process; a batch goes to a free one.

    Start with `ProcessModel.start(config, instances)`, which blocks until every copy has loaded
    and warmed up (run it off the event loop). `watch` reports a process that ends, so the server
    or worker can notice a crashed model; `close` stops them all.
    """

    def __init__(self, config: ModelProcessConfig, instances: Sequence[_Instance]) -> None:
        signature = instances[0].wait_ready()
        for other in instances[1:]:
            other.wait_ready()
        self.name = config.name
        self.uri = config.uri
        self.inputs = signature.inputs
        self.outputs = signature.outputs
        self.platform = signature.platform
        self.device = signature.device
        self.load_s = signature.load_s
        self.warm_up_s = signature.warm_up_s
        self.graph = signature.graph
        """Whether the first instance serves the optimized graph, and why (each instance
        decides on its own measurements)."""
        self._instances = list(instances)
        self._watching: asyncio.AbstractEventLoop | None = None
        self._free: queue.SimpleQueue[_Instance] = queue.SimpleQueue()
        for instance in self._instances:
            self._free.put(instance)

    @classmethod
    def start(cls, config: ModelProcessConfig, instances: int = 1) -> ProcessModel:
        """Start `instances` processes in parallel and wait until all are ready."""
        started = [_Instance(config, index) for index in range(instances)]
        try:
            return cls(config, started)
        except BaseException:
            for instance in started:
                instance.stop()
            raise

    @property
    def pids(self) -> list[int | None]:
        """Process ids of the instances, in order."""
        return [instance.process.pid for instance in self._instances]

    @property
    def exit_codes(self) -> list[int | None]:
        """Exit codes of the instances, in order (None while one runs)."""
        return [instance.process.exitcode for instance in self._instances]

    @property
    def sentinels(self) -> list[int]:
        """File descriptors that become readable when a model process ends."""
        return [instance.process.sentinel for instance in self._instances]

    def watch(self, on_exit: Callable[[], None]) -> None:
        """Call `on_exit` on the running event loop whenever an instance's process ends."""
        loop = asyncio.get_running_loop()
        self._watching = loop
        for sentinel in self.sentinels:
            loop.add_reader(sentinel, self._process_ended, loop, sentinel, on_exit)

    def restart_dead(self) -> int:
        """Restart every instance whose process ended; how many were restarted.

        Blocks while they load (run it off the event loop), and must not overlap a
        `predict_batch`: the caller holds the model alone meanwhile. It does not combine with
        `watch` (whose callback means "the model is gone"): callers that restart notice a death
        by the `ModelProcessDiedError` of the batch it was in. Raises ModelLoadError when a
        fresh process cannot load the model.
        """
        if self._watching is not None:
            raise RuntimeError("restart_dead() on a watched model; unwatch() first")
        dead = [instance for instance in self._instances if not instance.process.is_alive()]
        for instance in dead:
            instance.respawn()
        return len(dead)

    def unwatch(self) -> None:
        """Stop watching: call before a deliberate `close`, whose exits are expected."""
        if self._watching is not None:
            for sentinel in self.sentinels:
                self._watching.remove_reader(sentinel)
            self._watching = None

    @staticmethod
    def _process_ended(
        loop: asyncio.AbstractEventLoop, sentinel: int, on_exit: Callable[[], None]
    ) -> None:
        loop.remove_reader(sentinel)  # Stays readable: report each exit once.
        on_exit()

    @override
    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        instance = self._free.get()
        try:
            outputs: dict[str, np.ndarray] = instance.call(inputs)
            return outputs
        finally:
            self._free.put(instance)

    def close(self, timeout_s: float | None = None) -> None:
        """Close every pipe; each child exits on its own or is killed after `timeout_s`.

        The default timeout is STOP_TIMEOUT_S; 0 kills at once (the server's second signal).
        """
        for instance in self._instances:
            instance.stop(STOP_TIMEOUT_S if timeout_s is None else timeout_s)
