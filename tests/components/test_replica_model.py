"""The plan's batcher model against the simulator's kernel: one steady state for both.

`components/planning/replica_model.py` restates the kernel's rules in plain Python (the
components cannot import the offline engine, and the infra extra has no numpy). These tests hold
the two within `TOLERANCE` on the dev stack's own profile at 30-90% load, and check that the
threshold the simulator reads from the rendered ScaledObject is the model's value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inferstack.components.planning.replica_model import (
    BatcherRules,
    ComputeLaw,
    steady_state,
)
from inferstack.components.planning.sizing import batcher_rules, compute_law
from inferstack.offline.simulate.fast import QueueingTable, build_table
from inferstack.offline.simulate.inputs import StackInputs, load_stack

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TOLERANCE = 0.05
"""Relative: the kernel's table samples the gauges 600 times per rate (about 3% noise at 70%)."""


@pytest.fixture(scope="module")
def dev() -> StackInputs:
    return load_stack("dev", ROOT, NOW)


@pytest.fixture(scope="module")
def table(dev: StackInputs) -> QueueingTable:
    pool = dev.configured.realtime
    assert pool is not None
    return build_table(pool, np.random.default_rng(0))


def _model(dev: StackInputs) -> tuple[BatcherRules, ComputeLaw]:
    realtime = dev.spec.realtime
    assert realtime is not None
    return batcher_rules(dev.spec, realtime.gpu.count), compute_law(dev.profile)


def test_rules_and_compute_are_the_kernels(dev: StackInputs) -> None:
    pool = dev.configured.realtime
    assert pool is not None
    rules, law = _model(dev)
    assert rules.due_count == pool.batcher.due_count
    assert rules.instances == pool.batcher.instances
    median, sigma = pool.compute.tables(rules.max_batch_size)
    for size in range(1, rules.max_batch_size + 1):
        assert law.median_sigma(size) == pytest.approx((median[size], sigma[size]), rel=1e-9)


@pytest.mark.parametrize("load", [0.3, 0.5, 0.7, 0.9])
def test_gauges_match_the_kernel_table(dev: StackInputs, table: QueueingTable, load: float) -> None:
    rules, law = _model(dev)
    rate = law.throughput(rules.max_batch_size, rules.instances) * load
    state = steady_state(rules, law, rate)
    assert state.queue_depth == pytest.approx(table.at(table.queue_depth, rate), rel=TOLERANCE)
    assert state.in_flight == pytest.approx(table.at(table.in_flight, rate), rel=TOLERANCE)


def test_the_dev_stacks_gauges_at_its_sized_rate(dev: StackInputs, table: QueueingTable) -> None:
    realtime = dev.sizing.realtime
    assert realtime is not None
    rate = realtime.replica_rps.value
    state = steady_state(*_model(dev), rate)
    # The measurement: about 11 waiting at 2,233 rps, not one full batch (32); about 26
    # in flight, not Little's law on delay + p50 (33.6, about 77% load).
    assert state.queue_depth == pytest.approx(11.1, abs=0.05)
    assert state.in_flight == pytest.approx(26.4, abs=0.05)
    assert state.queue_depth == pytest.approx(table.at(table.queue_depth, rate), rel=TOLERANCE)
    assert state.in_flight == pytest.approx(table.at(table.in_flight, rate), rel=TOLERANCE)


def test_the_simulator_scales_on_the_plans_target(dev: StackInputs) -> None:
    realtime = dev.sizing.realtime
    pool = dev.configured.realtime
    assert realtime is not None
    assert pool is not None
    assert pool.scaler is not None
    assert pool.metric == "rps"  # the default metric, which the dev stack names
    assert pool.scaler.demand_threshold == realtime.target_per_replica.value
    assert pool.scaler.polling_seconds == realtime.scale_up.value.polling_seconds


@pytest.mark.parametrize("stack", ["scale-to-zero", "aws-prod"])
def test_each_stacks_auto_target_is_the_kernels_gauge_at_its_sized_rate(stack: str) -> None:
    # scale-to-zero: in_flight on batch 64 (44.2 in flight at 2,883 rps); aws-prod: queue_depth.
    inputs = load_stack(stack, ROOT, NOW)
    realtime, pool = inputs.sizing.realtime, inputs.configured.realtime
    assert realtime is not None
    assert pool is not None
    table = build_table(pool, np.random.default_rng(0))
    gauge = table.in_flight if pool.metric == "in_flight" else table.queue_depth
    kernel = table.at(gauge, realtime.replica_rps.value)
    assert realtime.target_per_replica.value == pytest.approx(kernel, rel=TOLERANCE)
