"""The cost estimate against hand-computed figures, lever by lever."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from inferstack.components.planning.cost import estimate_cost
from inferstack.components.planning.pricing import default_price_table, machine_price
from inferstack.components.planning.sizing import size_service
from tests.components.factories import make_profile, make_spec

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
L4_MONTH = 0.805 * 730  # g6.xlarge on-demand, one replica, one month


def estimate(**changes: object):  # type: ignore[no-untyped-def]
    spec = make_spec(**changes)
    profile = make_profile()
    return estimate_cost(spec, profile, size_service(spec, profile, now=NOW))


def by_lever(**changes: object) -> dict[str, float]:
    return {row.lever: row.monthly_usd for row in estimate(**changes).rows}


def test_levers_hand_computed() -> None:
    rows = by_lever()
    realtime_naive = 58 * L4_MONTH  # 20000 rps / (500 x 0.7) at batch 1 = 57.1 -> 58
    batch_naive = 2 * L4_MONTH  # 1000 items/s average / 500 at batch 1
    assert rows["naive"] == pytest.approx(realtime_naive + batch_naive, abs=0.01)
    # Batching: 9 realtime replicas at 2240 rps, one batch replica at 3200 items/s.
    assert rows["batching"] == pytest.approx(10 * L4_MONTH, abs=0.01)
    # Autoscaling: 5 spikes a week x (120 + 3 lead) minutes at 5 replicas, else 3 replicas;
    # the batch pool's 1000 items/s arrive around the clock (no batch.schedule), so its one
    # replica never goes to zero: held all month, though it is busy only 1000 / 3200 of it.
    average = (615 * 5 + 3 * (10080 - 615)) / 10080
    assert rows["autoscaling"] == pytest.approx((average + 1) * L4_MONTH, abs=0.01)
    assert rows["scale-to-zero"] == rows["autoscaling"]  # baseline > 0: nothing to gain
    blended = 0.9 * (0.36 / 0.805) + 0.1
    spot = (average + blended) * L4_MONTH
    assert rows["spot"] == pytest.approx(spot, abs=0.01)


def test_savings_add_up_and_are_explained() -> None:
    result = estimate()
    previous = None
    for row in result.rows:
        if previous is not None:
            assert row.saves_usd == pytest.approx(previous - row.monthly_usd, abs=0.01)
        assert row.reason
        previous = row.monthly_usd
    assert result.configured_monthly_usd == result.rows[-1].monthly_usd
    assert 0 < result.savings_ratio < 1
    assert "as of" in result.price_source


def test_scale_to_zero_saves_the_idle_floor_when_there_is_no_baseline() -> None:
    rows = by_lever(
        traffic__baseline_rps=0,
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        batch=None,
    )
    assert rows["scale-to-zero"] < rows["autoscaling"]
    share = 615 / 10080
    assert rows["autoscaling"] == pytest.approx((share * 5 + (1 - share) * 1) * L4_MONTH, abs=0.01)
    assert rows["scale-to-zero"] == pytest.approx(share * 5 * L4_MONTH, abs=0.01)


def test_batch_pool_without_volume_is_not_costed_and_says_so() -> None:
    result = estimate(batch__expected_items_per_day=None)
    assert any("expected_items_per_day" in note for note in result.notes)
    assert result.rows[-1].monthly_usd == result.rows[-2].monthly_usd  # spot has nothing to act on


def test_price_overrides_replace_list_prices() -> None:
    overridden = by_lever(prices={"g6.xlarge": {"on_demand": 1.0, "spot": 0.5}})
    assert overridden["batching"] == pytest.approx(10 * 730.0)
    assert (
        "override" in estimate(prices={"g6.xlarge": {"on_demand": 1.0, "spot": 0.5}}).price_source
    )


def test_price_table_is_dated_sourced_and_covers_the_gpu_catalog() -> None:
    table = default_price_table()
    assert table.as_of == "2025-07-01"
    assert "pricing" in table.source
    for family in ("g5.xlarge", "g6.xlarge", "g6e.xlarge", "p4d.24xlarge", "p5.48xlarge"):
        assert family in table.instances["aws"]
    a100 = machine_price("nvidia-a100-40gb", "aws")
    assert a100.gpus_per_instance == 8
    assert a100.on_demand_per_gpu_hour == pytest.approx(21.96 / 8)
    assert machine_price("nvidia-l4", "gcp").instance_type == "g2-standard-8"


def test_scale_to_zero_is_never_free_for_a_pool_that_serves_traffic() -> None:
    # The stack: baseline 0, peak 300, no spikes. It used to cost 0 ("saves 100%").
    result = estimate(
        traffic={"baseline_rps": 0, "peak_rps": 300, "spikes": []},
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        batch=None,
    )
    rows = {row.lever: row.monthly_usd for row in result.rows}
    assert rows["scale-to-zero"] == rows["autoscaling"] == pytest.approx(L4_MONTH, abs=0.01)
    assert result.configured_monthly_usd > 0
    assert result.savings_ratio < 1
    assert any("no time at zero is counted" in note for note in result.notes)
    # With the spikes declared, the time between them is at zero, and only that.
    spiky = by_lever(
        traffic__baseline_rps=0,
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        batch=None,
    )
    assert 0 < spiky["scale-to-zero"] < spiky["autoscaling"]


def batch_only(items_per_day: float, **changes: object):  # type: ignore[no-untyped-def]
    return estimate(
        realtime=None,
        batch__expected_items_per_day=items_per_day,
        batch__capacity={"spot": False},
        **changes,
    )


def test_spread_batch_work_holds_the_replicas_its_rate_needs_all_day() -> None:
    # 8000 items/s around the clock: three replicas of 3200 items/s, never idle long enough to
    # go to zero. The work fills the day, so a window would save nothing and none is offered.
    result = batch_only(8000 * 86400)
    assert result.configured_monthly_usd == pytest.approx(3 * L4_MONTH, abs=0.01)
    note = result.notes[0]
    assert "arrive spread over the day (no batch.schedule)" in note
    assert "keep 3 replica(s) up all day, busy 83.3% of it" in note
    assert "declare batch.schedule" not in note


def test_rare_batch_items_let_the_pool_go_to_zero_between_them() -> None:
    # One item an hour: most gaps outlast KEDA's 300 s cooldown plus the node's 600 s removal,
    # so the node is up about 1 - exp(-900 / 3600) of the time, plus the waits of its wakes.
    up = batch_only(24).configured_monthly_usd / L4_MONTH
    assert 1 - math.exp(-0.25) < up < 0.30
    # Ten times the rate: up nearly all the time; the share only grows with the rate.
    shares = [batch_only(n).configured_monthly_usd / L4_MONTH for n in (24, 96, 240, 2400)]
    assert shares == sorted(shares)
    assert shares[-1] > 0.99


def test_a_declared_window_costs_less_than_the_same_items_spread_over_the_day() -> None:
    result = batch_only(20_000_000)
    spread = result.configured_monthly_usd
    nightly = batch_only(
        20_000_000,
        batch__schedule={"cron": "0 1 * * *", "timezone": "UTC", "duration_minutes": 240},
    ).configured_monthly_usd
    assert spread == pytest.approx(L4_MONTH, abs=0.01)
    assert nightly < spread / 4
    # The spread pool's note offers the window, with what one drained daily run would save.
    assert "declare batch.schedule: one daily run at full rate would cost $" in result.notes[0]


def test_cloud_run_queue_workers_bill_their_fixed_count_around_the_clock() -> None:
    # One item an hour: on Kubernetes the pool goes to zero between items (see above), but a
    # Cloud Run worker pool scales only manually, so its one worker bills every hour.
    spec = make_spec(
        realtime=None, batch__expected_items_per_day=24, batch__capacity={"spot": False}
    )
    profile = make_profile()
    sizing = size_service(spec, profile, now=NOW)
    on_cloud_run = estimate_cost(spec, profile, sizing, "cloudrun")
    price = machine_price("nvidia-l4", "cloudrun", spec.prices, default_price_table())
    worker_month = price.on_demand_per_gpu_hour * 730
    assert on_cloud_run.configured_monthly_usd == pytest.approx(worker_month, abs=0.01)
    assert "fixed count of 1 worker(s) billed around the clock" in on_cloud_run.notes[0]
    on_kubernetes = estimate_cost(spec, profile, sizing, "aws")
    assert on_kubernetes.configured_monthly_usd < 0.30 * L4_MONTH
