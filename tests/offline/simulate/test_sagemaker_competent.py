"""The competent default on SageMaker runs SageMaker's own scaling with AWS's defaults, not KEDA's
loop: target tracking on concurrency per copy at half the copy's peak rate, the default
cooldowns, the competent floor and a scheduled floor at each declared spike's start."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from inferstack.components.planning.replica_model import steady_state
from inferstack.components.planning.sizing import TARGET_UTILISATION, batcher_rules, compute_law
from inferstack.offline.simulate.autoscaler import ScaledObjectParams
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.loop import keda_for
from inferstack.offline.simulate.sagemaker import (
    DEFAULT_COOLDOWN_S,
    SAFETY_FACTOR,
    SageMakerAsyncScaling,
    SageMakerScaler,
    SageMakerScaling,
)
from inferstack.offline.simulate.scenarios import competent_default

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 1, 5, tzinfo=UTC)


def test_sagemaker_prods_competent_default_runs_sagemakers_loop_with_aws_defaults():
    inputs = load_stack("sagemaker-prod", REPO, parse_start(DEFAULT_START))
    configured = inputs.configured
    competent = competent_default(configured, inputs.facts)
    pool = competent.realtime
    assert pool is not None
    assert isinstance(pool.scaler, SageMakerScaling)
    assert isinstance(keda_for(pool, START, 60), SageMakerScaler)
    scaling = pool.scaler
    # AWS's starting target: the concurrency per copy at half the copy's peak rate, from the
    # batcher model the component's own target (at 70% of it) comes from.
    planned = inputs.plan.realtime
    assert planned is not None
    peak = planned.sizing.replica_rps.value / TARGET_UTILISATION
    at_half = steady_state(
        batcher_rules(inputs.plan.spec, planned.gpu.count),
        compute_law(inputs.plan.profile),
        peak * SAFETY_FACTOR,
    )
    assert SAFETY_FACTOR == 0.5
    assert scaling.target_concurrency == round(at_half.in_flight, 1)
    assert configured.realtime is not None
    rendered = configured.realtime.scaler
    assert isinstance(rendered, SageMakerScaling)
    assert 0 < scaling.target_concurrency < rendered.target_concurrency
    # Application Auto Scaling's default cooldowns (the stack renders 60 s to scale out).
    assert DEFAULT_COOLDOWN_S == 300.0
    assert scaling.scale_out_cooldown_s == scaling.scale_in_cooldown_s == 300.0
    assert rendered.scale_out_cooldown_s == 60.0
    # The competent floor, a scheduled floor at each declared spike (no lead), no wake alarm.
    facts = inputs.facts
    assert scaling.min_replicas == max(
        1, math.ceil(math.ceil(facts.peak_rps / facts.replica_rps) / 4)
    )
    assert len(scaling.crons) == len(facts.spikes) == 1
    assert scaling.crons[0].start == facts.spikes[0].cron
    assert scaling.wake_period_s == 0.0
    assert scaling.max_replicas == rendered.max_replicas
    # The asynchronous endpoint keeps SageMaker's backlog loop, on-demand, default cooldowns.
    batch = competent.batch
    assert batch is not None
    assert isinstance(batch.scaler, SageMakerAsyncScaling)
    assert batch.scaler.scale_out_cooldown_s == batch.scaler.scale_in_cooldown_s == 300.0
    assert not batch.spot
    assert "SageMaker target tracking" in competent.description


def test_kubernetes_competent_default_keeps_kedas_loop():
    inputs = load_stack("dev", REPO, parse_start(DEFAULT_START))
    competent = competent_default(inputs.configured, inputs.facts)
    assert competent.realtime is not None
    scaler = competent.realtime.scaler
    assert type(scaler) is ScaledObjectParams
    assert not isinstance(keda_for(competent.realtime, START, 60), SageMakerScaler)
    assert "KEDA/HPA defaults" in competent.description
