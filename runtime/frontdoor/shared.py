"""What every acceptor reads and only the model side writes: global admission and drain state.

One small array of shared memory (`multiprocessing.RawArray`): the batcher's queue depth and
Retry-After, whether it accepts requests, and whether the server drains. Admission at header
time (`InferenceApp.admit`) reads it, so a full queue refuses a request at every acceptor alike;
the batcher's own check at submit stays the last word, as in one process. One writer (the model
side's event loop) and aligned 64-bit slots: no lock is needed for a reader to see a whole value.

Also the metrics' multiprocess mode: prometheus_client writes each process's values to files in
one folder and `/metrics` sums them (`SharedMetrics`).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from typing_extensions import override

from inferstack.runtime.metrics import RuntimeMetrics

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's variable for the folder of multiprocess metric files (its own name)."""

_QUEUE_DEPTH, _RETRY_AFTER, _ACCEPTING, _DRAINING = range(4)


class SharedState:
    """The model side's admission and drain state, readable by every acceptor."""

    def __init__(self) -> None:
        self._slots: Any = multiprocessing.get_context("spawn").RawArray("q", 4)
        self._slots[_ACCEPTING] = 1
        self._slots[_RETRY_AFTER] = 1

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch, all acceptors together."""
        return int(self._slots[_QUEUE_DEPTH])

    @property
    def retry_after_s(self) -> int:
        """The batcher's current Retry-After for a refused request."""
        return int(self._slots[_RETRY_AFTER])

    @property
    def accepting(self) -> bool:
        """False once the batcher stopped admitting (after the drain's listen window)."""
        return bool(self._slots[_ACCEPTING])

    @property
    def draining(self) -> bool:
        """True from the first SIGTERM (or a lost model process) on: readiness is false."""
        return bool(self._slots[_DRAINING])

    def publish_queue(self, depth: int, retry_after_s: int) -> None:
        """The model side: the queue changed."""
        self._slots[_QUEUE_DEPTH] = depth
        self._slots[_RETRY_AFTER] = retry_after_s

    def stop_accepting(self) -> None:
        """The model side: the batcher refuses new requests from now on."""
        self._slots[_ACCEPTING] = 0

    def begin_drain(self) -> None:
        """The model side: readiness turns false everywhere."""
        self._slots[_DRAINING] = 1


class SharedMetrics(RuntimeMetrics):
    """`RuntimeMetrics` whose `/metrics` is the sum over every process of the server."""

    def __init__(self, model: str) -> None:
        # An acceptor inherits the model side's PROMETHEUS_MULTIPROC_DIR (`MetricsFolder`), so
        # prometheus_client writes its metrics to the folder from import on.
        super().__init__(model, multiprocess=True)

    @override
    def exposition(self) -> bytes:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


class MetricsFolder:
    """The folder of multiprocess metric files, set up in the model side before any metric.

    PROMETHEUS_MULTIPROC_DIR when given (its `*.db` files from an earlier run are removed, as
    prometheus_client requires), else a temporary folder removed at exit. Processes started
    after `__init__` inherit the variable, so their metrics are multiprocess ones from import.
    """

    def __init__(self) -> None:
        given = os.environ.get(MULTIPROC_DIR_ENV)
        self._owned = not given
        self.path = Path(given) if given else Path(tempfile.mkdtemp(prefix="inferstack-metrics-"))
        self.path.mkdir(parents=True, exist_ok=True)
        for stale in self.path.glob("*.db"):
            stale.unlink()
        os.environ[MULTIPROC_DIR_ENV] = str(self.path)
        # prometheus_client chose its value class when this process imported it; metrics
        # created from now on write to the folder.
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

    def process_ended(self, pid: int) -> None:
        """A process exited: its live gauges no longer count."""
        mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]

    def remove(self) -> None:
        """Remove the folder if this server made it."""
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)


__all__ = ["MULTIPROC_DIR_ENV", "MetricsFolder", "SharedMetrics", "SharedState"]
