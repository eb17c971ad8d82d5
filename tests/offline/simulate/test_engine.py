"""The exact mode end to end: wake from zero, spot drains, reproducibility."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.report import summarize
from tests.offline.simulate.factories import (
    COLD,
    batch_pool,
    realtime_pool,
    scenario,
    zero_pool,
)

START = datetime(2026, 1, 5, tzinfo=UTC)


def _idle_then_burst() -> np.ndarray:
    rates = np.zeros(900)
    rates[400:460] = 4.0  # fewer held requests than the queue limit: none refused
    return rates


def test_requests_at_zero_are_held_and_released_when_a_replica_is_ready():
    run = run_exact(scenario(zero_pool(hold_timeout_s=60)), _idle_then_burst(), START, seed=3)
    summary = summarize(run, timeline=False)
    assert summary["held_at_zero"] > 0
    assert summary["timeouts"] == 0
    assert summary["rejected"] == 0
    assert summary["served"] == summary["requests"]
    # The first requests waited for KEDA's poll plus the whole cold start.
    assert summary["latency_ms"]["max"] >= COLD.new_node_s * 1000
    # Back to zero after the cooldown: the last minutes have no ready replica.
    assert run.timeline.realtime_ready[-1] == 0


def test_held_requests_time_out_when_the_hold_is_shorter_than_the_wake():
    run = run_exact(scenario(zero_pool(hold_timeout_s=10)), _idle_then_burst(), START, seed=3)
    summary = summarize(run, timeline=False)
    assert summary["timeouts"] > 0
    assert summary["slo_attainment"] < 1


def test_without_scale_to_zero_requests_with_no_replica_are_refused():
    pool = realtime_pool(scaler=None, fixed_replicas=0)
    run = run_exact(scenario(pool), np.full(60, 5.0), START, seed=1)
    summary = summarize(run, timeline=False)
    assert summary["rejected"] == summary["requests"] > 0


def test_demand_scales_the_pool_up_after_a_step():
    rates = np.full(1200, 500.0)
    rates[300:] = 6000.0
    run = run_exact(scenario(realtime_pool()), rates, START, seed=5)
    assert run.timeline.realtime_ready[2] == 1
    assert max(run.timeline.realtime_ready) >= 3


def test_spot_interruptions_drain_fall_back_and_lose_nothing():
    pool = batch_pool(scaler=None, fixed_replicas=2)
    run = run_exact(
        scenario(batch=pool, spot_interruptions_per_node_hour=20.0), np.zeros(3600), START, seed=2
    )
    summary = summarize(run, timeline=False)
    batch = [p for p in summary["pools"] if p["pool"] == "batch"][0]
    assert batch["interruptions"] > 0
    assert batch["gpu_hours_spot"] > 0
    assert batch["gpu_hours_on_demand"] > 0
    assert summary["batch"]["pods_drained_on_notice"] > 0
    assert summary["batch"]["items_lost"] == 0
    stats = run.batch
    assert stats is not None
    assert stats.processed > 0.95 * stats.items


def test_the_same_seed_reproduces_the_same_numbers_exactly():
    rates = np.full(600, 800.0)
    rates[200:300] = 4000.0
    config = scenario(realtime_pool(), batch_pool(), spot_interruptions_per_node_hour=5.0)
    first = summarize(run_exact(config, rates, START, seed=11))
    second = summarize(run_exact(config, rates, START, seed=11))
    other = summarize(run_exact(config, rates, START, seed=12))
    assert first == second
    assert first != other
