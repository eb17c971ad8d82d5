"""Test doubles for the batcher: a hand-driven clock and a model gated on events.

Nothing here sleeps. The clock moves only when a test calls `advance`; the model blocks its
worker thread on a `threading.Event` that the test opens, and reports each call to the event
loop through a queue the test awaits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

GATE_SAFETY_S = 30.0
"""Upper bound on a gated call, so a broken test fails instead of hanging CI."""


@dataclass(order=True)
class _Timer:
    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that stands still until `advance` runs the timers that fall due."""

    def __init__(self) -> None:
        self.time = 1000.0
        self._timers: list[_Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.time

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.time += seconds
        while self._timers and self._timers[0].when <= self.time:
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()


class GatedModel:
    """A model that doubles its input, blocking each call until the test opens the gate."""

    def __init__(self, *, open_gate: bool = True) -> None:
        self.gate = threading.Event()
        if open_gate:
            self.gate.set()
        self.calls: list[np.ndarray] = []
        self.entered: asyncio.Queue[int] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self.fail_with: Exception | None = None
        self.fail_on: float | None = None
        """A batch holding this value anywhere raises `ValueError`, with a TorchScript-like
        multi-line message (its last line says what failed)."""
        self.drop_rows = 0

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = inputs["x"]
        self.calls.append(batch.copy())
        self._loop.call_soon_threadsafe(self.entered.put_nowait, batch.shape[0])
        if not self.gate.wait(GATE_SAFETY_S):
            raise AssertionError("the test never opened the model gate")
        if self.fail_with is not None:
            raise self.fail_with
        if self.fail_on is not None and bool(np.any(batch == self.fail_on)):
            raise ValueError(
                "The following operation failed in the TorchScript interpreter.\n"
                "Traceback of TorchScript (most recent call last):\n"
                '  File "/srv/models/secret/model.py", line 9, in forward\n'
                f"RuntimeError: index {self.fail_on} out of range in self\n"
            )
        return {"y": batch[: batch.shape[0] - self.drop_rows] * 2}


def rows(*values: float) -> dict[str, np.ndarray]:
    """One request: one row per value, two columns each."""
    return {"x": np.array([[value, value] for value in values], dtype=np.float32)}


async def settle() -> None:
    """Let every ready callback and task run (zero-time yields, not a wait)."""
    for _ in range(20):
        await asyncio.sleep(0)
