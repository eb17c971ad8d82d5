"""SageMaker's scaling loops: target tracking's datapoints, errors at zero, scheduled pre-warm,
the asynchronous endpoint's backlog tracking and its wake from zero."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from inferstack.cli import main
from inferstack.components.sagemaker.scaling import async_scaling, realtime_scaling
from inferstack.offline.simulate.autoscaler import DEFAULT_BEHAVIOR, CronSchedule, CronTrigger
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.fast import run_fast
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.loop import batch_queue, keda_for
from inferstack.offline.simulate.replica import REFUSED, SERVED, TIMEOUTS
from inferstack.offline.simulate.sagemaker import (
    ASYNC_SAMPLE_SECONDS,
    DATAPOINT_SECONDS,
    SageMakerAsyncScaler,
    SageMakerAsyncScaling,
    SageMakerScaler,
    SageMakerScaling,
    async_params,
)
from tests.offline.simulate.factories import batch_pool, realtime_pool, scenario

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def _scaling(**changes: object) -> SageMakerScaling:
    base: dict[str, object] = {
        "polling_seconds": DATAPOINT_SECONDS,
        "cooldown_seconds": 300.0,
        "min_replicas": 1,
        "max_replicas": 8,
        "behavior": DEFAULT_BEHAVIOR,
        "demand_threshold": 100.0,
        "activation_threshold": 0.0,
        "target_concurrency": 4.0,
        "scale_out_cooldown_s": 60.0,
        "scale_in_cooldown_s": 300.0,
        "wake_period_s": 60.0,
    }
    base.update(changes)
    return SageMakerScaling(**base)  # type: ignore[arg-type]


def _scaler(params: SageMakerScaling, seconds: float = 3600.0) -> SageMakerScaler:
    schedules = [CronSchedule(trigger, START, seconds) for trigger in params.crons]
    return SageMakerScaler(params, schedules)


def test_scale_out_waits_for_three_datapoints_over_the_target():
    scaler = _scaler(_scaling())
    # 2 copies holding 16 in flight: 8 per copy, twice the target of 4.
    assert scaler.hpa_sync(15.0, 2, 0.0, 16.0) == 2  # 15 s over: 1.5 datapoints
    assert scaler.hpa_sync(30.0, 2, 0.0, 16.0) == 4  # 30 s over: 3 datapoints; ceil(2 * 8 / 4)
    # Within the 60 s scale-out cooldown, still over: no second scale-out yet.
    assert scaler.hpa_sync(45.0, 4, 0.0, 32.0) == 4
    assert scaler.hpa_sync(60.0, 4, 0.0, 32.0) == 4
    assert scaler.hpa_sync(90.0, 4, 0.0, 32.0) == 8  # cooldown over, 3 more datapoints


def test_a_dip_resets_the_high_alarm():
    scaler = _scaler(_scaling())
    assert scaler.hpa_sync(15.0, 2, 0.0, 16.0) == 2
    assert scaler.hpa_sync(30.0, 2, 0.0, 7.5) == 2  # 3.75 per copy: within the band
    assert scaler.hpa_sync(45.0, 2, 0.0, 16.0) == 2  # the streak starts again
    assert scaler.hpa_sync(60.0, 2, 0.0, 16.0) == 4


def test_scale_in_waits_for_fifteen_datapoints_below_and_the_cooldown():
    scaler = _scaler(_scaling())
    copies, now = 4, 0.0
    decisions = []
    for _ in range(10):  # 150 s of 15 s samples at 1 per copy
        now += 15.0
        copies = scaler.hpa_sync(now, copies, 0.0, 4.0)
        decisions.append(copies)
    assert decisions[:9] == [4] * 9  # 135 s: 13.5 datapoints
    assert decisions[9] == 1  # 150 s: 15 datapoints; ceil(4 * 1 / 4), the floor 1
    # A scale-out, then the scale-in cooldown holds the next scale-in for 300 s.
    scaler = _scaler(_scaling())
    assert scaler.hpa_sync(15.0, 2, 0.0, 16.0) == 2
    assert scaler.hpa_sync(30.0, 2, 0.0, 16.0) == 4
    copies, now = 4, 30.0
    for _ in range(19):  # to 315 s: 285 s below, 15 datapoints long since
        now += 15.0
        copies = scaler.hpa_sync(now, copies, 0.0, 0.0)
    assert copies == 4
    assert scaler.hpa_sync(now + 15.0, copies, 0.0, 0.0) == 1  # 330 s: 300 s after it


def test_zero_copies_wake_through_the_no_capacity_alarm_on_its_minute():
    scaler = _scaler(_scaling(min_replicas=0))
    assert scaler.poll(10.0, 0, 0.0, 0) == 0  # no failures
    assert scaler.poll(50.0, 0, 2.0, 0) == 0  # failures, but the alarm's minute is not over
    assert scaler.poll(60.0, 0, 2.0, 0) == 1  # the alarm: the step policy adds one copy
    assert scaler.wakes == 1
    assert scaler.hpa_sync(75.0, 0, 2.0, 0.0) == 0  # no copies: no per-copy datapoints
    # An alarm rendered with two datapoints to alarm waits for a second failing minute.
    slower = _scaler(_scaling(min_replicas=0, wake_datapoints=2))
    assert slower.poll(60.0, 0, 2.0, 0) == 0
    assert slower.poll(120.0, 0, 2.0, 0) == 1


def test_a_scheduled_pre_warm_raises_the_floor_and_holds_scale_in():
    # 09:00-10:00 New York on Mondays: 14:00-15:00 UTC on 2026-01-05.
    floor = CronTrigger("prewarm-0", "America/New_York", "0 9 * * 1", "0 10 * * 1", 5)
    seconds = 16 * 3600.0
    scaler = _scaler(_scaling(crons=(floor,)), seconds)
    before, inside, after = 13.5 * 3600, 14 * 3600 + 10.0, 15 * 3600 + 10.0
    assert scaler.poll(before, 1, 0.0, 0) == 1
    assert scaler.poll(inside, 1, 0.0, 0) == 5  # the scheduled action's minimum applies at once
    copies, now = 5, inside
    for _ in range(30):  # idle inside the window: no scale-in below the scheduled minimum
        now += 15.0
        copies = scaler.hpa_sync(now, copies, 0.0, 0.0)
    assert copies == 5
    assert scaler.poll(after, 5, 0.0, 0) == 5  # the floor is back to 1: target tracking decides
    assert scaler.hpa_sync(after + 15.0, 5, 0.0, 0.0) == 1


def test_requests_at_zero_copies_are_errors_not_held():
    params = _scaling(min_replicas=0, max_replicas=2, cooldown_seconds=60.0)
    pool = realtime_pool(metric="rps", scaler=params, scale_to_zero=False)
    scen = scenario(realtime=pool, opening="floor", scrape_s=DATAPOINT_SECONDS, consolidation_s=0)
    rates = np.full(240, 100.0)
    for result in (
        run_exact(scen, rates, START, seed=1),
        run_fast(scen, rates, START, seed=1),
    ):
        counters = result.recorder.counters
        assert result.held == 0
        assert counters[TIMEOUTS] == 0
        # At zero from the start: the wake alarm's first minute (60 s), then a cold start of
        # 30 s (instance 20 + image 5 + load 3 + warm-up 2): ~90 s of requests are errors.
        assert 8_000 < counters[REFUSED] < 10_000, result.mode
        assert counters[SERVED] > 12_000, result.mode
        assert result.timeline.realtime_ready[0] == 0
        assert result.timeline.realtime_ready[-1] >= 1


def test_sagemaker_prod_runs_the_components_scaling():
    inputs = load_stack("sagemaker-prod", REPO, parse_start(DEFAULT_START))
    pool = inputs.configured.realtime
    assert pool is not None
    assert isinstance(pool.scaler, SageMakerScaling)
    planned = inputs.plan.realtime
    assert planned is not None
    rendered = realtime_scaling(inputs.plan, planned)
    scaling = pool.scaler
    assert scaling.target_concurrency == rendered.target_concurrency.value
    assert (scaling.min_replicas, scaling.max_replicas) == (
        rendered.min_copies.value,
        rendered.max_copies.value,
    )
    assert scaling.scale_out_cooldown_s == rendered.scale_out_cooldown_s == 60
    assert scaling.scale_in_cooldown_s == rendered.scale_in_cooldown_s == 300
    assert (scaling.datapoint_s, scaling.high_datapoints, scaling.low_datapoints) == (
        rendered.metric_period_s,
        rendered.alarms.high_datapoints,
        rendered.alarms.low_datapoints,
    )
    # One scheduled floor per pre-warm window (the component's start/end action pair).
    assert len(scaling.crons) * 2 == len(rendered.schedule)
    assert not pool.scale_to_zero  # SageMaker holds nothing at zero
    assert inputs.configured.consolidation_s == 0.0
    assert inputs.configured.batch is not None
    assert not inputs.configured.batch.spot  # SageMaker hosting offers no spot
    assert isinstance(keda_for(pool, START, 60), SageMakerScaler)
    # The Kubernetes stacks still run KEDA's loop.
    dev = load_stack("dev", REPO, parse_start(DEFAULT_START)).configured.realtime
    assert dev is not None
    assert not isinstance(keda_for(dev, START, 60), SageMakerScaler)


def test_simulate_prints_the_sagemaker_table(capsys):
    code = main(
        [
            "simulate",
            "--project-dir",
            str(REPO),
            "--stack",
            "sagemaker-prod",
            "--diurnal",
            "--bursts",
            "--days",
            "0.05",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "configured" in captured.out.splitlines()[1]
    assert "rejected + timeouts" in captured.out
    assert "sagemaker ml.g6.xlarge" in captured.out
    spot = next(line for line in captured.out.splitlines() if line.startswith("batch GPU-h spot"))
    assert spot.split()[4] == "0.0"  # the configured column: no spot on SageMaker


# ---------------------------------------------------------------------------------------------
# The asynchronous endpoint: Application Auto Scaling on the backlog, woken by an alarm


def _async_scaler(**changes: object) -> SageMakerAsyncScaler:
    base: dict[str, object] = {
        "polling_seconds": ASYNC_SAMPLE_SECONDS,
        "cooldown_seconds": 300.0,
        "min_replicas": 0,
        "max_replicas": 8,
        "behavior": DEFAULT_BEHAVIOR,
        "demand_threshold": 100.0,
        "activation_threshold": 0.0,
        "target_backlog": 100.0,
        "datapoint_s": 60.0,
        "wake_period_s": 60.0,
    }
    base.update(changes)
    return SageMakerAsyncScaler(SageMakerAsyncScaling(**base), [])  # type: ignore[arg-type]


def _polls(scaler: SageMakerAsyncScaler, current: int, demand: float, until: float) -> list[int]:
    counts, now = [], 0.0
    while now < until:
        now += ASYNC_SAMPLE_SECONDS
        current = scaler.poll(now, current, demand, 0)
        counts.append(current)
    return counts


def test_async_scale_out_waits_for_three_one_minute_datapoints():
    scaler = _async_scaler()
    # 1 instance, a backlog of 300: 3 per-instance datapoints of 300 against a target of 100.
    counts = _polls(scaler, 1, 300.0, 180.0)
    assert counts[:-1] == [1] * 11  # 165 s: two whole minutes over the target
    assert counts[-1] == 3  # 180 s: the third datapoint; ceil(1 * 300 / 100)


def test_async_idle_instances_scale_in_to_zero_after_fifteen_minutes():
    scaler = _async_scaler()
    counts = _polls(scaler, 2, 0.0, 900.0)
    assert set(counts[:-1]) == {2}  # 14 low datapoints
    assert counts[-1] == 0  # the 15th: an empty queue's zeros take the minimum of 0


def test_async_wake_from_zero_is_the_alarm_not_a_poll():
    scaler = _async_scaler()
    # A backlog and no instance: target tracking has no per-instance datapoint; the
    # HasBacklogWithoutCapacity alarm's minute closes at 60 s and its step policy adds one.
    assert _polls(scaler, 0, 50.0, 60.0) == [0, 0, 0, 1]
    assert scaler.woken_at == [60.0]
    # With two datapoints to alarm, the second minute.
    slower = _async_scaler(wake_evaluation_periods=2, wake_datapoints=2)
    assert _polls(slower, 0, 50.0, 120.0)[-1] == 1
    assert slower.woken_at == [120.0]


def test_async_wake_latency_is_alarm_period_times_datapoints_plus_instance_start():
    """On sagemaker-prod the async endpoint starts at zero instances with a backlog: the first
    instance serves after the rendered wake alarm's period x datapoints plus an instance start,
    not after KEDA's polling interval."""
    inputs = load_stack("sagemaker-prod", REPO, parse_start(DEFAULT_START))
    planned = inputs.plan.batch
    assert planned is not None
    rendered = async_scaling(inputs.plan, planned)
    assert rendered.wake is not None
    pool = inputs.configured.batch
    assert pool is not None
    assert isinstance(pool.scaler, SageMakerAsyncScaling)
    scen = replace(inputs.configured, realtime=None, batch=pool, opening="floor")
    rng = np.random.default_rng(0)
    queue = batch_queue(scen, START, 600, rng)
    assert queue is not None
    assert queue.capacity.spec_replicas == 0
    first_ready = None
    for t0 in range(0, 600, 15):
        queue.step(float(t0), 15.0, rng)
        if first_ready is None and queue.capacity.ready_count(float(t0 + 15)) > 0:
            first_ready = min(p.ready_at for p in queue.capacity.pods)
    alarm_s = rendered.wake.period_s * rendered.wake.datapoints_to_alarm
    assert first_ready == pytest.approx(alarm_s + scen.cold_start.new_node_s)
    assert queue.stats.processed > 0


def test_sagemaker_prod_async_runs_the_components_scaling():
    inputs = load_stack("sagemaker-prod", REPO, parse_start(DEFAULT_START))
    planned = inputs.plan.batch
    assert planned is not None
    rendered = async_scaling(inputs.plan, planned)
    pool = inputs.configured.batch
    assert pool is not None
    assert pool.scaler == async_params(rendered)
    scaling = pool.scaler
    assert isinstance(scaling, SageMakerAsyncScaling)
    assert scaling.target_backlog == rendered.target_backlog.value
    assert (scaling.min_replicas, scaling.max_replicas) == (0, rendered.max_instances.value)
    assert scaling.datapoint_s == rendered.metric_period_s == 60
    assert (scaling.high_datapoints, scaling.low_datapoints) == (
        rendered.alarms.high_datapoints,
        rendered.alarms.low_datapoints,
    )
    assert rendered.wake is not None
    assert scaling.wake_period_s == rendered.wake.period_s
    assert scaling.wake_datapoints == rendered.wake.datapoints_to_alarm
    assert isinstance(keda_for(pool, START, 60), SageMakerAsyncScaler)


def test_async_queue_runs_in_both_modes_from_zero():
    params = _async_scaler().params
    pool = batch_pool(scaler=params, spot=False)
    scen = scenario(batch=pool, opening="floor", consolidation_s=0)
    rates = np.zeros(1200)
    for result in (
        run_exact(scen, rates, START, seed=1),
        run_fast(scen, rates, START, seed=1),
    ):
        assert result.batch is not None
        # 200 items/s from the start: woken at 60 s, an instance at 90 s, then it keeps up.
        assert result.timeline.batch_ready_on_demand[0] == 0
        assert result.timeline.batch_ready_on_demand[1] >= 1
        assert result.batch.processed > 0.9 * result.batch.items, result.mode
