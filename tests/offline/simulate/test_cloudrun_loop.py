"""Cloud Run's instance autoscaling: concurrency at 60 %, the window, the idle keep, pre-warm."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from inferstack.cli import main
from inferstack.components.cloudrun.scaling import service_scaling
from inferstack.components.planning.cold_start import CLOUD_RUN_INSTANCE_START_S
from inferstack.offline.simulate.autoscaler import DEFAULT_BEHAVIOR, CronSchedule, CronTrigger
from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.cloudrun import (
    IDLE_KEEP_S,
    WINDOW_S,
    CloudRunScaler,
    CloudRunScaling,
)
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.simulate.loop import keda_for

REPO = Path(__file__).resolve().parents[3]
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def _scaling(**changes: object) -> CloudRunScaling:
    base: dict[str, object] = {
        "polling_seconds": 10.0,
        "cooldown_seconds": IDLE_KEEP_S,
        "min_replicas": 0,
        "max_replicas": 8,
        "behavior": DEFAULT_BEHAVIOR,
        "demand_threshold": 100.0,
        "activation_threshold": 0.0,
        "max_concurrency": 10.0,
    }
    base.update(changes)
    return CloudRunScaling(**base)  # type: ignore[arg-type]


def _scaler(params: CloudRunScaling, seconds: float = 3600.0) -> CloudRunScaler:
    schedules = [CronSchedule(trigger, START, seconds) for trigger in params.crons]
    return CloudRunScaler(params, schedules)


def test_scale_out_is_immediate_at_sixty_percent_of_the_maximum():
    scaler = _scaler(_scaling())
    # 6 per instance is 60 % of 10: 13 in flight want ceil(13 / 6) = 3 instances at once.
    assert scaler.hpa_sync(15.0, 1, 0.0, 13.0) == 3
    assert scaler.hpa_sync(30.0, 3, 0.0, 18.0) == 3  # exactly 6 each: no change
    # Bounded by the maximum instances.
    assert scaler.hpa_sync(45.0, 3, 0.0, 1000.0) == 8


def test_scale_in_waits_the_window_and_zero_waits_the_idle_keep():
    scaler = _scaler(_scaling())
    now, instances = 0.0, 4
    # The lower need is first seen at 15 s; the count falls a full window later.
    while now < WINDOW_S:
        now += 15.0
        assert scaler.hpa_sync(now, instances, 0.0, 6.0) == instances  # wants 1, waits
    now += 15.0
    instances = scaler.hpa_sync(now, instances, 0.0, 6.0)
    assert instances == 1
    # No load at all: one idle instance is kept (and billed) up to the idle keep.
    start = now + 15.0
    while now < start + IDLE_KEEP_S - 15.0:
        now += 15.0
        assert scaler.hpa_sync(now, instances, 0.0, 0.0) == 1
    now += 15.0
    assert scaler.hpa_sync(now, instances, 0.0, 0.0) == 0


def test_a_request_held_at_zero_starts_an_instance_and_the_minimum_holds():
    scaler = _scaler(_scaling())
    assert scaler.poll(10.0, 0, 0.0, 0) == 0
    assert scaler.poll(20.0, 0, 5.0, 3) == 1  # Cloud Run holds requests while one starts
    floor = _scaler(_scaling(min_replicas=2))
    assert floor.poll(10.0, 0, 0.0, 0) == 2
    assert floor.hpa_sync(10.0 + IDLE_KEEP_S * 2, 2, 0.0, 0.0) == 2


def test_a_pre_warm_job_raises_the_minimum_for_its_window():
    window = CronTrigger("prewarm-0", "UTC", "0 9 * * 1", "0 11 * * 1", 5)
    scaler = _scaler(_scaling(min_replicas=1, crons=(window,)), seconds=86400.0)
    assert scaler.poll(8 * 3600.0, 1, 0.0, 0) == 1
    assert scaler.poll(9 * 3600.0 + 10.0, 1, 0.0, 0) == 5
    assert scaler.hpa_sync(10 * 3600.0, 5, 0.0, 0.0) == 5  # the floor holds inside the window


def test_cloudrun_prod_runs_the_components_scaling():
    inputs = load_stack("cloudrun-prod", REPO, parse_start(DEFAULT_START))
    pool = inputs.configured.realtime
    assert pool is not None
    assert isinstance(pool.scaler, CloudRunScaling)
    planned = inputs.plan.realtime
    assert planned is not None
    rendered = service_scaling(inputs.plan, planned)
    assert pool.scaler.max_concurrency == rendered.max_concurrency.value
    assert (pool.scaler.min_replicas, pool.scaler.max_replicas) == (
        rendered.min_instances.value,
        rendered.max_instances.value,
    )
    assert len(pool.scaler.crons) * 2 == len(rendered.prewarm)
    assert inputs.configured.batch is not None
    assert not inputs.configured.batch.spot  # Cloud Run offers no spot
    assert isinstance(keda_for(pool, START, 60), CloudRunScaler)
    dev = load_stack("dev", REPO, parse_start(DEFAULT_START)).configured.realtime
    assert dev is not None
    assert not isinstance(keda_for(dev, START, 60), CloudRunScaler)


def test_simulate_prints_the_cloudrun_table(capsys):
    code = main(
        [
            "simulate",
            "--project-dir",
            str(REPO),
            "--stack",
            "cloudrun-prod",
            "--diurnal",
            "--bursts",
            "--days",
            "0.05",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "configured" in captured.out.splitlines()[1]
    assert "cloudrun nvidia-l4-4cpu-16gib" in captured.out
    spot = next(line for line in captured.out.splitlines() if line.startswith("batch GPU-h spot"))
    assert spot.split()[4] == "0.0"


def test_a_cloudrun_instance_starts_without_a_node():
    """The simulated instance start is the plan's Cloud Run one: 5 s, not a node's provisioning
    (`components.planning.cold_start`); the Kubernetes stack keeps its node."""
    inputs = load_stack("cloudrun-prod", REPO, parse_start(DEFAULT_START))
    cold = inputs.configured.cold_start
    assert cold.node_provision_s == CLOUD_RUN_INSTANCE_START_S
    assert cold.new_node_s == pytest.approx(inputs.plan.profile.cold_start.total_seconds)
    dev = load_stack("dev", REPO, parse_start(DEFAULT_START))
    assert dev.configured.cold_start.node_provision_s == (
        dev.plan.profile.cold_start.node_provision.seconds
    )
    assert dev.configured.cold_start.node_provision_s > CLOUD_RUN_INSTANCE_START_S


def test_a_fetched_model_s_download_is_part_of_the_simulated_instance_start():
    """Instance start + image + download + load + warm-up: the plan's Cloud Run cold start."""
    from inferstack.components.kubernetes.options import KubernetesOptions
    from inferstack.components.planning.plan import plan_service
    from inferstack.offline.simulate.inputs import build_inputs
    from inferstack.offline.stack_config import StackConfig
    from inferstack.profile import parse_profile
    from tests.components.aws.factories import NOW
    from tests.components.cloudrun.factories import MODEL, MODEL_PROFILE, QUEUE, make_options
    from tests.components.factories import make_spec

    spec = make_spec(model=MODEL, batch__queue=QUEUE)
    profile = parse_profile({**MODEL_PROFILE, "model_bytes": 2_000_000_000})
    plan = plan_service(spec, profile, target="cloudrun", now=NOW)
    config = StackConfig("cloudrun", spec, plan, KubernetesOptions(), cloudrun=make_options())
    cold = build_inputs("team", config).configured.cold_start
    # The factory profile's image 60 s, load 20 s, warm-up 10 s; 2 GB at 100 MB/s.
    assert (cold.node_provision_s, cold.image_pull_s, cold.model_download_s) == (5.0, 60, 20)
    assert cold.new_node_s == 5 + 60 + 20 + 20 + 10 == plan.sizing.cold_start_seconds.value
