"""Small scenarios for engine tests: one replica's worth of traffic, fixed compute."""

from __future__ import annotations

from dataclasses import replace

from inferstack.offline.simulate.autoscaler import DEFAULT_BEHAVIOR, ScaledObjectParams
from inferstack.offline.simulate.config import (
    BatchPool,
    ColdStart,
    Prices,
    RealtimePool,
    Scenario,
)
from inferstack.offline.simulate.replica import BatcherParams, ComputeModel

PRICES = Prices(1.0, 0.4, 1, "test prices")
COLD = ColdStart(node_provision_s=20, image_pull_s=5, model_load_s=3, warmup_s=2)


def realtime_pool(**changes) -> RealtimePool:
    base = RealtimePool(
        batcher=BatcherParams(16, (8, 16), 0.004, 256, None, 1),
        compute=ComputeModel((1, 16), (0.002, 0.008), (0.003, 0.010)),
        gpus_per_replica=1,
        prices=PRICES,
        latency_budget_s=0.05,
        metric="queue_depth",
        scaler=ScaledObjectParams(10, 300, 1, 4, DEFAULT_BEHAVIOR, 16.0, 0.0),
    )
    return replace(base, **changes)


def zero_pool(hold_timeout_s: float) -> RealtimePool:
    return realtime_pool(
        scaler=ScaledObjectParams(10, 60, 0, 2, DEFAULT_BEHAVIOR, 16.0, 0.0, http_wake=True),
        scale_to_zero=True,
        hold_timeout_s=hold_timeout_s,
    )


def batch_pool(**changes) -> BatchPool:
    base = BatchPool(
        items_per_second=200.0,
        replica_items_per_second=500.0,
        gpus_per_replica=1,
        prices=PRICES,
        scaler=ScaledObjectParams(15, 300, 0, 4, DEFAULT_BEHAVIOR, 1000.0, 0.0),
        notice_s=120.0,
        grace_s=105.0,
    )
    return replace(base, **changes)


def scenario(realtime=None, batch=None, **changes) -> Scenario:
    base = Scenario("test", "a test scenario", realtime, batch, COLD)
    return replace(base, **changes)
