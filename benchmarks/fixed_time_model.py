"""A handler whose batch takes `a + b * batch_size` ms of wall time, whatever the CPU does.

The simulator's fidelity cannot be judged on this shared 2-core machine with a CPU-bound model:
the demo MLP's compute time moved 5x between runs. This model sleeps instead of computing, so it
leaves the cores to the server and the client and its batch time is the same in every run; what
is left between measured and simulated is the server path and the batcher, which is what the
fidelity benchmark judges. Served and profiled like any handler:

    inferstack serve --model fixed_time_model:FixedTime      (with benchmarks/ on PYTHONPATH)
    inferstack profile --model fixed_time_model:FixedTime --out fixed.json

`FIXED_TIME_A_MS` and `FIXED_TIME_B_MS` in the environment change a and b (defaults 8 and 0.5:
batch 1 takes 8.5 ms, batch 32 takes 24 ms, about 1,300 items/s per replica).
"""

from __future__ import annotations

import os
import time
from typing import Final

import numpy as np

from inferstack.runtime.tensors import TensorSpec

A_MS_ENV: Final = "FIXED_TIME_A_MS"
B_MS_ENV: Final = "FIXED_TIME_B_MS"
DEFAULT_A_MS: Final = 8.0
DEFAULT_B_MS: Final = 0.5
FEATURES: Final = 64


def batch_ms(batch_size: int, a_ms: float = DEFAULT_A_MS, b_ms: float = DEFAULT_B_MS) -> float:
    """The wall time one batch of `batch_size` takes, in milliseconds."""
    return a_ms + b_ms * batch_size


class FixedTime:
    """`score = mean(input)` per row of a [-1, 64] FP32 tensor, after `a + b * rows` ms."""

    inputs = [TensorSpec("input", "FP32", [-1, FEATURES])]
    outputs = [TensorSpec("score", "FP32", [-1, 1])]

    def __init__(self) -> None:
        self.a_ms = float(os.environ.get(A_MS_ENV, DEFAULT_A_MS))
        self.b_ms = float(os.environ.get(B_MS_ENV, DEFAULT_B_MS))

    def load(self) -> None:
        """Nothing to load."""

    def predict_batch(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Sleep until the batch's time is up, then answer (a sleep, not a spin: no CPU)."""
        began = time.perf_counter()
        rows = inputs["input"]
        deadline = began + batch_ms(len(rows), self.a_ms, self.b_ms) / 1000
        scores = rows.mean(axis=1, keepdims=True, dtype=np.float32)
        # One sleep overshoots by the timer slack (about 0.1 ms); a second short one is rarely
        # needed, so the batch ends within that slack of its deadline.
        while (left := deadline - time.perf_counter()) > 0:
            time.sleep(left)
        return {"score": scores}
