"""The scale-up policy, the pre-warm lead and the spot share set in the stack file change what
the simulator runs: it reads them through the plan and the rendered ScaledObject, as tune does.

Each test runs the dev stack (2 replicas for its 3,000 rps baseline, 2,233 rps each, cold start
210 s, derived scale-up 7 pods per 15 s, pre-warm lead 4 min before its 09:00 New York spike)
with one field set, on a short slice of traffic built to show that field's effect.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from inferstack.offline.discovery import ProgramLocation, engine_config, read_project
from inferstack.offline.simulate.cli import simulate
from inferstack.offline.simulate.config import Scenario
from inferstack.offline.simulate.inputs import StackInputs, build_inputs, program_values
from inferstack.offline.simulate.report import summarize
from inferstack.offline.stack_config import from_values

REPO = Path(__file__).resolve().parents[3]
SPIKE_DAY = datetime(2026, 12, 7, 13, 50, tzinfo=UTC)
"""Monday 08:50 in New York: ten minutes before the dev stack's declared spike."""


def _values(stack: str) -> dict[str, Any]:
    project = read_project(REPO)
    location = ProgramLocation(
        project, REPO, project.program_dir, stack, engine_config(project, stack)
    )
    return program_values(location)


def _inputs(start: datetime, stack: str = "dev", **fields: object) -> StackInputs:
    """A stack with `realtime__scaling__scale_up={...}`-style fields set in its spec."""
    values = copy.deepcopy(_values(stack))
    service = values["service"]
    assert isinstance(service, dict)
    for dotted, value in fields.items():
        *parents, leaf = dotted.split("__")
        node = service
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return build_inputs(stack, from_values(values, project_dir=REPO, now=start))


def _run(
    inputs: StackInputs, rates: np.ndarray, start: datetime, scenario: Scenario | None = None
) -> dict[str, Any]:
    chosen = scenario or inputs.configured
    (run,) = simulate(inputs, rates, start, seed=0, mode="fast", scenarios=[chosen])
    return summarize(run, timeline=False)


def test_a_faster_scale_up_policy_raises_attainment_on_a_burst() -> None:
    # 3,000 rps, then a burst to 13,000 rps for 20 minutes: 6 replicas' worth, asked for as the
    # rps gauge's 60 s rate window catches up (the derived 7 pods per 15 s never bind), one
    # replica per 2 minutes at `pods: 1` (10% of 2-6 replicas rounds up to 1 too).
    start = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)  # outside the spike's window
    rates = np.concatenate([np.full(600, 3000.0), np.full(1200, 13000.0), np.full(600, 3000.0)])
    policy = {"pods": 1, "percent": 10, "period_seconds": 120}
    slow = _inputs(start, realtime__scaling__scale_up=policy)
    fast = _inputs(start)
    up = slow.configured.realtime
    assert up is not None
    assert up.scaler is not None
    assert [(p.value, p.period_seconds) for p in up.scaler.behavior.scale_up.policies] == [
        (10, 120),
        (1, 120),
    ]
    slow_run, fast_run = _run(slow, rates, start), _run(fast, rates, start)
    assert fast_run["slo_attainment"] > slow_run["slo_attainment"] + 0.01


def test_a_lead_of_a_cold_start_removes_the_spikes_misses() -> None:
    rates = np.concatenate([np.full(600, 3000.0), np.full(1200, 15000.0)])
    late = _inputs(SPIKE_DAY, realtime__prewarm_lead_minutes=0)
    derived = _inputs(SPIKE_DAY)
    (window,) = late.sizing.realtime.prewarm if late.sizing.realtime else []
    assert window.start_cron == "0 9 * * 1-5"
    late_run, derived_run = _run(late, rates, SPIKE_DAY), _run(derived, rates, SPIKE_DAY)
    assert late_run["slo_attainment"] < 0.99
    assert derived_run["slo_attainment"] > 0.9999


def test_the_spot_share_moves_queue_cost_and_interruptions() -> None:
    # 400M items a day: about 4,600 items/s against 3,190 per replica, a pool of a few replicas,
    # for 6 hours with spot interrupted 0.5 times per node-hour (30 min shortages after each).
    # On aws-prod: only Karpenter's two NodePools render a split share.
    start = datetime(2026, 1, 6, 3, 0, tzinfo=UTC)
    rates = np.full(6 * 3600, 3000.0)
    pools = {}
    for share in (1.0, 0.5, 0.0):
        inputs = _inputs(
            start,
            "aws-prod",
            batch__expected_items_per_day=400_000_000,
            batch__capacity__spot_share=share,
        )
        batch = inputs.configured.batch
        assert batch is not None
        assert batch.spot_share == share
        scenario = replace(inputs.configured, spot_interruptions_per_node_hour=0.5)
        document = _run(inputs, rates, start, scenario)
        pools[share] = next(p for p in document["pools"] if p["pool"] == "batch")
    assert pools[0.0]["gpu_hours_spot"] == 0
    assert pools[0.0]["interruptions"] == 0
    assert pools[1.0]["interruptions"] > pools[0.5]["interruptions"] > 0
    assert pools[0.5]["gpu_hours_on_demand"] > 0
    assert pools[0.5]["gpu_hours_spot"] > 0
    # Half on spot (at 45% of the price) costs less than none; all on spot pays for the
    # on-demand fallback during every shortage, so it is not the cheapest at this rate.
    assert pools[0.5]["monthly_usd"] < pools[0.0]["monthly_usd"]
