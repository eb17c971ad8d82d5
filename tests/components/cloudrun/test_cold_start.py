"""Cloud Run's cold start has no node term: an instance start, the image, the model's
download, load and warm-up, with a reason line that says so; every other target keeps the
node's provisioning."""

from __future__ import annotations

import pytest

from inferstack.components.planning.cold_start import CLOUD_RUN_INSTANCE_START_S
from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.errors import SpecError
from inferstack.profile import parse_profile
from tests.components.aws.factories import NOW
from tests.components.cloudrun.factories import MODEL, MODEL_PROFILE, QUEUE
from tests.components.factories import make_spec

SPIKE = {"cron": "0 9 * * 1-5", "timezone": "America/New_York", "duration_minutes": 60,
         "rps": 9000}  # fmt: skip


def _plans(**profile_changes: object) -> dict[str, ServicePlan]:
    spec = make_spec(model=MODEL, batch__queue=QUEUE, traffic__spikes=[SPIKE])
    profile = parse_profile({**MODEL_PROFILE, **profile_changes})
    return {
        target: plan_service(spec, profile, target=target, now=NOW)
        for target in ("cloudrun", "gcp")
    }


def test_the_instance_start_is_googles_figure() -> None:
    """Cloud Run, "GPU support for services" (https://cloud.google.com/run/docs/configuring/
    services/gpu): "Cloud Run instances with an attached L4 GPU with drivers pre-installed start
    in approximately 5 seconds, at which point the processes running in your container can
    start to use the GPU"."""
    assert CLOUD_RUN_INSTANCE_START_S == 5.0


def test_cloud_run_counts_an_instance_start_where_gke_counts_a_node() -> None:
    plans = _plans(model_bytes=2_000_000_000)
    cloudrun, gke = plans["cloudrun"], plans["gcp"]
    # The factory's profile: node 90 s, image 60 s, load 20 s, warm-up 10 s; 2 GB at 100 MB/s.
    assert gke.sizing.cold_start_seconds.value == 90 + 60 + 20 + 20 + 10
    assert cloudrun.sizing.cold_start_seconds.value == 5 + 60 + 20 + 20 + 10
    reason = cloudrun.sizing.cold_start_seconds.reason
    assert reason.startswith("no node on Cloud Run (it starts an instance")
    assert "instance start 5 s (assumed)" in reason
    assert "image 60 s (assumed; streamed: an upper bound)" in reason
    assert "download 20 s" in reason
    assert "node 90" not in reason
    assert gke.sizing.cold_start_seconds.reason.startswith("node 90 s (assumed)")
    # Every consumer reads the same cold start: the profile the plan hands on says it too.
    assert cloudrun.profile.cold_start.total_seconds == 115
    assert cloudrun.profile.cold_start.node_provision.note.startswith("Cloud Run starts an")


def test_the_pre_warm_lead_follows_the_shorter_start() -> None:
    plans = _plans(model_bytes=2_000_000_000)
    cloudrun, gke = plans["cloudrun"].sizing.realtime, plans["gcp"].sizing.realtime
    assert cloudrun is not None
    assert gke is not None
    [run_window], [gke_window] = cloudrun.prewarm, gke.prewarm
    # ceil(115 s / 60) and ceil(200 s / 60) minutes early.
    assert (run_window.lead_minutes, gke_window.lead_minutes) == (2, 4)
    assert "cold start 115 s: instance start, image, download, load, warm-up" in run_window.reason
    assert "cold start 200 s: node, image, download, load, warm-up" in gke_window.reason


def test_a_scale_to_zero_refusal_names_the_instance_start() -> None:
    spec = make_spec(
        model=MODEL,
        batch=None,
        traffic__baseline_rps=0,
        traffic__spikes=[],
        realtime__scale_to_zero=True,
        realtime__scaling__min_replicas=0,
    )
    with pytest.raises(SpecError) as refused:
        plan_service(spec, parse_profile(MODEL_PROFILE), target="cloudrun", now=NOW)
    [problem] = refused.value.problems
    assert problem.path == "realtime.scale_to_zero"
    assert "a cold start of 95 s (instance start 5 + image 60 + " in problem.message
