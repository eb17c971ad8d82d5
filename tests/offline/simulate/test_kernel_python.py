"""The plain-Python batcher kernel (no numba installed) gives the compiled kernel's numbers."""

from __future__ import annotations

import numpy as np

from inferstack.offline.simulate import replica
from inferstack.offline.simulate.replica import (
    BatcherParams,
    ComputeModel,
    KernelTables,
    Recorder,
    Replica,
    advance,
)

PARAMS = BatcherParams(32, (16, 32), 0.005, 128, 0.05, 2)
COMPUTE = ComputeModel((1, 16, 32), (0.002, 0.006, 0.010), (0.003, 0.008, 0.013))


def _run() -> Recorder:
    tables = KernelTables.build(PARAMS, COMPUTE, 0.03)
    rng = np.random.default_rng(7)
    state = Replica(PARAMS, 0.0)
    recorder = Recorder.empty(2)
    for second in range(3):
        times = second + np.sort(rng.random(int(rng.poisson(4000))))
        advance(state, tables, times, times, second + 1.0, rng, recorder)
    return recorder


def test_python_and_compiled_kernels_agree(monkeypatch):
    compiled = _run()
    monkeypatch.setattr(replica, "kernel", replica._kernel)
    plain = _run()
    assert np.array_equal(compiled.counters, plain.counters)
    assert np.array_equal(compiled.fine, plain.fine)
    assert np.array_equal(compiled.coarse, plain.coarse)
    assert compiled.counters.sum() > 0
