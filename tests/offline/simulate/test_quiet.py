"""The fast mode's quiet stretches (`quiet`): evaluating KEDA's and the HPA's decisions for a run
of ticks at once changes no number against deciding tick by tick, on runs that move."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from inferstack.offline.simulate import fast
from inferstack.offline.simulate.autoscaler import DEFAULT_BEHAVIOR, ScaledObjectParams
from inferstack.offline.simulate.report import summarize
from tests.offline.simulate.factories import batch_pool, realtime_pool, scenario, zero_pool

START = datetime(2026, 1, 5, tzinfo=UTC)


def _wavy(seconds: int, low: float, high: float, seed: int) -> np.ndarray:
    """Slow swings with bursts: moves up and down, and long stretches without one."""
    t = np.arange(seconds, dtype=np.float64)
    rates = low + (high - low) * 0.5 * (1 - np.cos(2 * np.pi * t / 3600))
    rng = np.random.default_rng(seed)
    for begin in rng.integers(0, seconds - 300, 4):
        rates[begin : begin + 240] *= 1.8
    return rates


def _both(config, rates: np.ndarray, seed: int):
    quiet = summarize(fast.run_fast(config, rates, START, seed=seed), timeline=True)
    stepped = summarize(fast.run_fast(config, rates, START, seed=seed, quiet=False), timeline=True)
    return quiet, stepped


def _assert_same(quiet: object, stepped: object) -> None:
    """Equal, but for the last bits of sums added in another order."""
    if isinstance(quiet, dict) and isinstance(stepped, dict):
        assert quiet.keys() == stepped.keys()
        for key in quiet:
            _assert_same(quiet[key], stepped[key])
    elif isinstance(quiet, list) and isinstance(stepped, list):
        assert len(quiet) == len(stepped)
        for a, b in zip(quiet, stepped, strict=True):
            _assert_same(a, b)
    elif isinstance(quiet, float) and isinstance(stepped, float):
        assert quiet == pytest.approx(stepped, rel=1e-9, nan_ok=True)
    else:
        assert quiet == stepped


@pytest.mark.parametrize("metric", ["queue_depth", "in_flight", "rps"])
def test_quiet_stretches_change_nothing_on_a_pool_that_moves(
    metric: str,
) -> None:
    targets = {"queue_depth": 4.0, "in_flight": 8.0, "rps": 900.0}
    scaler = ScaledObjectParams(15, 300, 1, 12, DEFAULT_BEHAVIOR, targets[metric], 0.0)
    config = scenario(realtime_pool(metric=metric, scaler=scaler))
    quiet, stepped = _both(config, _wavy(4 * 3600, 300.0, 6000.0, 1), 2)
    ready = [minute["realtime_ready"] for minute in quiet["timeline"]]
    moves = sum(1 for a, b in zip(ready, ready[1:], strict=False) if a != b)
    assert moves > 4  # it did move, so both paths were exercised
    _assert_same(quiet, stepped)


def test_quiet_stretches_change_nothing_at_zero_and_for_the_batch_queue() -> None:
    rates = _wavy(3 * 3600, 0.0, 800.0, 3)
    rates[3600:5400] = 0.0  # idle long enough to go to zero and wake again
    config = scenario(zero_pool(hold_timeout_s=30.0), batch_pool(items_per_second=900.0))
    quiet, stepped = _both(config, rates, 5)
    _assert_same(quiet, stepped)


def test_quiet_stretches_change_nothing_at_the_floor_and_the_ceiling() -> None:
    # Below the floor's worth of traffic the HPA proposes fewer replicas and the rate limits
    # keep the floor (above the ceiling's worth, the ceiling): a stretch there is quiet too.
    scaler = ScaledObjectParams(15, 300, 3, 5, DEFAULT_BEHAVIOR, 900.0, 0.0)
    config = scenario(realtime_pool(metric="rps", scaler=scaler))
    quiet, stepped = _both(config, _wavy(3 * 3600, 300.0, 6000.0, 4), 3)
    ready = [minute["realtime_ready"] for minute in quiet["timeline"]]
    assert ready.count(3) > 30
    assert ready.count(5) > 30
    _assert_same(quiet, stepped)
