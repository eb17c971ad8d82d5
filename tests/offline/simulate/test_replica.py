"""The batcher kernel against the runtime's batching rules, with a fixed compute time."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from inferstack.offline.simulate.replica import (
    BATCHES,
    REJECTED,
    SERVED,
    TIMEOUTS,
    WITHIN_BUDGET,
    BatcherParams,
    ComputeModel,
    KernelTables,
    Recorder,
    Replica,
    advance,
    highest,
    percentile,
)

COMPUTE = ComputeModel(sizes=(1, 32), p50_s=(0.002, 0.010), p99_s=(0.002, 0.010))


def _params(**changes) -> BatcherParams:
    base: dict[str, Any] = {
        "max_batch_size": 32,
        "preferred_batch_sizes": (),
        "max_queue_delay_s": 0.005,
        "queue_limit": 64,
        "request_timeout_s": None,
        "instances": 1,
    }
    base.update(changes)
    return BatcherParams(**base)


def _run(params: BatcherParams, arrivals: list[float], budget: float = 1.0) -> Recorder:
    tables = KernelTables.build(params, COMPUTE, budget)
    replica = Replica(params, 0.0)
    recorder = Recorder.empty(1)
    times = np.array(arrivals, dtype=np.float64)
    advance(replica, tables, times, times, 10.0, np.random.default_rng(0), recorder)
    return recorder


def test_a_lone_request_waits_the_queue_delay_then_computes():
    recorder = _run(_params(), [0.0])
    assert recorder.counters[SERVED] == 1
    assert percentile(recorder.fine, 0.5) == pytest.approx(0.005 + 0.002, rel=0.01)


def test_a_full_batch_goes_at_once():
    recorder = _run(_params(), [0.0] * 32)
    assert recorder.counters[BATCHES] == 1
    assert highest(recorder.fine) == pytest.approx(0.010, rel=0.02)


def test_a_preferred_size_goes_at_once_and_the_rest_waits_for_a_free_instance():
    recorder = _run(_params(preferred_batch_sizes=(16,)), [0.0] * 20)
    # 16 at t=0 (done at 6 ms, interpolated), then the other 4 as one batch when it is free.
    assert recorder.counters[BATCHES] == 2
    assert recorder.counters[SERVED] == 20


def test_a_full_queue_rejects():
    recorder = _run(_params(queue_limit=40), [0.0] * 100)
    # 32 leave for the model at once; 40 more fit the queue while it computes.
    assert recorder.counters[REJECTED] == 100 - 32 - 40
    assert recorder.counters[SERVED] == 72


def test_requests_past_their_timeout_never_reach_the_model():
    recorder = _run(_params(request_timeout_s=0.015, queue_limit=200), [0.0] * 96, budget=0.02)
    # Batches of 32 finish at 10, 20, 30 ms: the third batch would start at 20 ms > 15 ms.
    assert recorder.counters[TIMEOUTS] == 32
    assert recorder.counters[SERVED] == 64
    assert recorder.counters[WITHIN_BUDGET] == 64


def test_two_instances_compute_side_by_side():
    one = _run(_params(), [0.0] * 64)
    two = _run(_params(instances=2), [0.0] * 64)
    assert highest(two.fine) < highest(one.fine)


def test_compute_model_matches_the_profile_percentiles():
    model = ComputeModel(sizes=(1, 8), p50_s=(0.002, 0.004), p99_s=(0.003, 0.008))
    median, sigma = model.tables(8)
    draws = median[8] * np.exp(sigma[8] * np.random.default_rng(1).standard_normal(200_000))
    assert np.percentile(draws, 50) == pytest.approx(0.004, rel=0.01)
    assert np.percentile(draws, 99) == pytest.approx(0.008, rel=0.02)
    assert median[4] == pytest.approx(0.002 + 3 / 7 * 0.002)
    assert math.isfinite(model.throughput(8))
