"""A run opens where the stack would be: settled for its opening rate, not at the floor."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from inferstack.offline.simulate.autoscaler import DEFAULT_BEHAVIOR, KedaScaler, ScaledObjectParams
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.fast import run_fast
from inferstack.offline.simulate.opening import rps_gauge, settled_replicas
from inferstack.offline.simulate.report import summarize
from tests.offline.simulate.factories import batch_pool, realtime_pool, scenario

START = datetime(2026, 1, 5, tzinfo=UTC)


def _keda(minimum: int, maximum: int, threshold: float) -> KedaScaler:
    return KedaScaler(
        ScaledObjectParams(30, 300, minimum, maximum, DEFAULT_BEHAVIOR, threshold, 0.0), []
    )


def test_an_rps_pool_opens_at_the_count_its_target_asks_for():
    # The diurnal day opens at 7,234 rps; at 2,233 rps per replica the HPA holds 4, not 2.
    assert settled_replicas(_keda(2, 20, 2233.0), 7234.0, [(rps_gauge, 2233.0)], 2) == 4
    # Within the bounds: never above the maximum, never below the floor.
    assert settled_replicas(_keda(2, 3, 2233.0), 7234.0, [(rps_gauge, 2233.0)], 2) == 3
    assert settled_replicas(_keda(2, 20, 2233.0), 100.0, [(rps_gauge, 2233.0)], 2) == 2


def test_a_run_that_opens_above_the_floor_serves_its_first_minute_without_overload():
    # 4,000 rps on a floor of 1 replica that serves about 2,000: the pool opens settled, so
    # the first minute refuses nothing (it used to open on 1 replica: 89,733 refused, p99 140 ms).
    rates = np.full(180, 4000.0)
    config = scenario(realtime_pool())
    for run in (run_exact(config, rates, START, seed=1), run_fast(config, rates, START, seed=1)):
        summary = summarize(run)
        assert summary["timeline"][0]["realtime_ready"] >= 3, run.mode
        assert summary["rejected"] == 0, run.mode
        assert summary["latency_ms"]["p99"] <= 50, run.mode


def test_a_queue_pool_opens_with_the_workers_its_arrivals_need():
    # 1,200 items/s at 500 per worker: 3 workers from the start, not 0 and a backlog.
    rates = np.zeros(120)
    run = run_fast(scenario(batch=batch_pool(items_per_second=1200.0)), rates, START, seed=2)
    assert run.timeline.batch_ready_on_demand[0] + run.timeline.batch_ready_spot[0] >= 3
    assert run.batch is not None
    assert run.batch.max_backlog < 1200.0  # it used to reach 53,679
