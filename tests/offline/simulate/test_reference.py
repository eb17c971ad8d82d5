"""Reference figures, pinned: the simulator's numbers on a few fixed runs, to the last count.

The fast and exact modes are rewritten for speed from time to time (vectorised, compiled, run in
parallel); each such change must leave every number a user decides on as it was. These runs cover
each realtime metric, a batch pool with spot capacity, a pool that sleeps at zero and wakes, the
tick-by-tick path beside the quiet stretches, and the exact mode. A change to the model itself
(not to its speed) changes them on purpose: regenerate them then, and say so in the commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from inferstack.offline.simulate import fast
from inferstack.offline.simulate.autoscaler import DEFAULT_BEHAVIOR, ScaledObjectParams
from inferstack.offline.simulate.config import Scenario
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.loop import RunResult
from inferstack.offline.simulate.report import summarize
from tests.offline.simulate.factories import batch_pool, realtime_pool, scenario, zero_pool

START = datetime(2026, 1, 5, tzinfo=UTC)


def _wavy(seconds: int, low: float, high: float, seed: int) -> np.ndarray:
    """Slow swings with bursts: the pool moves up and down and holds still in between."""
    t = np.arange(seconds, dtype=np.float64)
    rates = low + (high - low) * 0.5 * (1 - np.cos(2 * np.pi * t / 3600))
    rng = np.random.default_rng(seed)
    for begin in rng.integers(0, seconds - 300, 4):
        rates[begin : begin + 240] *= 1.8
    return rates


def _scaled(metric: str, target: float) -> Scenario:
    scaler = ScaledObjectParams(15, 300, 1, 12, DEFAULT_BEHAVIOR, target, 0.0)
    return scenario(
        realtime_pool(metric=metric, scaler=scaler),
        batch_pool(spot=True, items_per_second=900.0),
        spot_interruptions_per_node_hour=2.0,
        spot_shortage_mean_s=600.0,
    )


def _sleeper() -> tuple[Scenario, np.ndarray]:
    rates = _wavy(3 * 3600, 0.0, 800.0, 3)
    rates[3600:5400] = 0.0  # idle long enough to go to zero and wake again
    pool = zero_pool(hold_timeout_s=30.0)
    assert pool.scaler is not None
    # On rps, which reads zero at zero traffic, so the pool does sleep and wake.
    pool = replace(pool, metric="rps", scaler=replace(pool.scaler, demand_threshold=300.0))
    return scenario(pool, batch_pool(items_per_second=900.0)), rates


def _case(name: str) -> Callable[[], RunResult]:
    if name == "exact queue_depth":
        config = _scaled("queue_depth", 4.0)
        rates = _wavy(900, 300.0, 3000.0, 4)
        return lambda: run_exact(config, rates, START, seed=6)
    if name == "fast zero and wake":
        config, rates = _sleeper()
        return lambda: fast.run_fast(config, rates, START, seed=5)
    if name == "fast zero and wake, tick by tick":
        config, rates = _sleeper()
        return lambda: fast.run_fast(config, rates, START, seed=5, quiet=False)
    metric, _, stepping = name.removeprefix("fast ").partition(", ")
    targets = {"queue_depth": 4.0, "in_flight": 8.0, "rps": 900.0}
    config = _scaled(metric, targets[metric])
    rates = _wavy(6 * 3600, 300.0, 6000.0, 1)
    return lambda: fast.run_fast(config, rates, START, seed=2, quiet=not stepping)


CASES = (
    "fast queue_depth",
    "fast in_flight",
    "fast rps",
    "fast rps, tick by tick",
    "fast zero and wake",
    "fast zero and wake, tick by tick",
    "exact queue_depth",
)


def _digest(values: list[Any]) -> str:
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def figures(name: str) -> dict[str, Any]:
    """What a user reads from the run, and digests of its timeline."""
    run = _case(name)()
    summary = summarize(run, timeline=True)
    timeline = run.timeline
    return {
        "counts": [
            summary[key] for key in ("requests", "served", "rejected", "timeouts", "held_at_zero")
        ],
        "slo_attainment": summary["slo_attainment"],
        "latency_ms": [summary["latency_ms"][q] for q in ("p50", "p95", "p99", "max")],
        "pools": [
            [pool["replica_hours_on_demand"], pool["replica_hours_spot"], pool["cold_starts"]]
            for pool in summary["pools"]
        ],
        "monthly_usd": summary["monthly_usd"],
        "ready": _digest(
            [
                timeline.realtime_ready,
                timeline.batch_ready_spot,
                timeline.batch_ready_on_demand,
            ]
        ),
        "p99_ms": _digest([round(p * 1000, 6) for p in timeline.p99_s]),
        "rps": _digest(timeline.rps),
        "cost_usd": round(timeline.cost_usd[-1], 9),
    }


PINNED: dict[str, dict[str, Any]] = {
    "fast queue_depth": {
        "counts": [70527229, 70482020, 45209, 0, 0],
        "slo_attainment": 0.992465,
        "latency_ms": [6.602, 9.928, 14.205, 149.433],
        "pools": [[19.429166666666667, 0.0, 46], [11.758333333333333, 12.025, 239]],
        "monthly_usd": 6018.04,
        "ready": "e1314973a28b8ff6",
        "p99_ms": "b284c32519670029",
        "rps": "64e35dfdd24a1208",
        "cost_usd": 49.480833333,
    },
    "fast in_flight": {
        "counts": [70527229, 70496128, 31101, 0, 0],
        "slo_attainment": 0.993919,
        "latency_ms": [6.472, 9.078, 12.481, 147.954],
        "pools": [[21.4625, 0.0, 40], [11.758333333333333, 12.025, 239]],
        "monthly_usd": 6254.78,
        "ready": "52200282453f67aa",
        "p99_ms": "74da618891639e81",
        "rps": "64e35dfdd24a1208",
        "cost_usd": 51.430833333,
    },
    "fast rps": {
        "counts": [70527229, 70527229, 0, 0, 0],
        "slo_attainment": 1.0,
        "latency_ms": [6.22, 8.467, 9.733, 39.784],
        "pools": [[27.3625, 0.0, 45], [11.758333333333333, 12.025, 239]],
        "monthly_usd": 7057.78,
        "ready": "7f3ee61c1a9d38d0",
        "p99_ms": "aaa4d9d3002b8fc4",
        "rps": "64e35dfdd24a1208",
        "cost_usd": 58.035,
    },
    "fast rps, tick by tick": {
        "counts": [70527229, 70527229, 0, 0, 0],
        "slo_attainment": 1.0,
        "latency_ms": [6.22, 8.467, 9.733, 39.784],
        "pools": [[27.3625, 0.0, 45], [11.758333333333333, 12.025, 239]],
        "monthly_usd": 7057.78,
        "ready": "7f3ee61c1a9d38d0",
        "p99_ms": "aaa4d9d3002b8fc4",
        "rps": "64e35dfdd24a1208",
        "cost_usd": 58.035,
    },
    "fast zero and wake": {
        "counts": [4066957, 4035105, 23798, 8054, 32116],
        "slo_attainment": 0.992103,
        "latency_ms": [5.977, 7.589, 8.3, 30042.723],
        "pools": [[4.440277777777778, 0.0, 5], [4.0875, 7.166666666666667, 99]],
        "monthly_usd": 3126.9,
        "ready": "5939472ef68167c8",
        "p99_ms": "0e114e5ac5aae558",
        "rps": "b0890ac2efb871aa",
        "cost_usd": 12.854722222,
    },
    "fast zero and wake, tick by tick": {
        "counts": [4066957, 4035105, 23798, 8054, 32116],
        "slo_attainment": 0.992103,
        "latency_ms": [5.977, 7.589, 8.3, 30042.723],
        "pools": [[4.440277777777778, 0.0, 5], [4.0875, 7.166666666666667, 99]],
        "monthly_usd": 3126.9,
        "ready": "5939472ef68167c8",
        "p99_ms": "0e114e5ac5aae558",
        "rps": "b0890ac2efb871aa",
        "cost_usd": 12.854722222,
    },
    "exact queue_depth": {
        "counts": [1875670, 1858286, 17384, 0, 0],
        "slo_attainment": 0.952244,
        "latency_ms": [6.282, 10.967, 134.609, 147.954],
        "pools": [[0.8958333333333334, 0.0, 7], [0.29333333333333333, 0.5816666666666667, 10]],
        "monthly_usd": 4307.49,
        "ready": "d2d6be2442adf4cc",
        "p99_ms": "ac8e16ef8c428ea7",
        "rps": "57f12acd597e0f96",
        "cost_usd": 1.477666667,
    },
}


@pytest.mark.parametrize("name", CASES)
def test_the_reference_runs_give_the_pinned_figures(name: str) -> None:
    got = figures(name)
    want = PINNED[name]
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9), key
        elif key == "pools":
            assert len(got[key]) == len(value)
            for row, pinned in zip(got[key], value, strict=True):
                assert row == pytest.approx(pinned, rel=1e-9), key
        else:
            assert got[key] == value, key
