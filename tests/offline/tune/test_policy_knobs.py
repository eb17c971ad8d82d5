"""The scale-up policy, the pre-warm lead and the spot share as knobs: searched only where the
target can set them (`target_knobs`), with ranges from the stack's own numbers, refused with the
reason when asked for on a target that cannot set them, and written into the stack file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from inferstack.offline.simulate.cli import DEFAULT_START, parse_start
from inferstack.offline.simulate.inputs import load_stack
from inferstack.offline.tune.knobs import (
    KNOB_NAMES,
    LEAD_PATH,
    OPTIONAL_KNOBS,
    SCALE_UP_PATH,
    SPOT_SHARE_PATH,
    field_values,
    realtime_knobs,
    target_knobs,
    unsettable_reason,
)
from inferstack.offline.tune.write import edited_text
from tests.offline.tune.test_cli import project, tune

REPO = Path(__file__).resolve().parents[3]
NEW = ("scale_up_pods", "prewarm_lead_minutes", "spot_share")


def _dev_knobs(target: Any = "kubernetes") -> dict[str, Any]:
    inputs = load_stack("dev", REPO, parse_start(DEFAULT_START))
    return realtime_knobs(
        inputs.spec,
        12,
        (1, 8, 16, 32, 64),
        target=target,
        cold_start_seconds=inputs.plan.sizing.cold_start_seconds.value,
    )


def test_kubernetes_targets_set_every_knob_and_managed_ones_not_the_hpa_or_spot() -> None:
    every = {*KNOB_NAMES, *OPTIONAL_KNOBS}
    for target in ("kubernetes", "aws", "gcp"):
        assert target_knobs(target) == every
    for target, platform in (("sagemaker", "SageMaker"), ("cloudrun", "Cloud Run")):
        assert {"scale_up_pods", "spot_share"}.isdisjoint(target_knobs(target))
        assert "prewarm_lead_minutes" in target_knobs(target)  # its scheduled floors read it
        reason = unsettable_reason(target, "scale_up_pods")
        assert reason is not None
        assert platform in reason


def test_the_dev_stack_searches_the_three_with_ranges_from_its_numbers() -> None:
    knobs = _dev_knobs()
    assert set(NEW) <= set(knobs)
    # Cold start 210 s: 4 whole minutes, the lead from 0 to twice that.
    assert knobs["prewarm_lead_minutes"].values == tuple(range(9))
    assert knobs["prewarm_lead_minutes"].path == LEAD_PATH
    assert knobs["scale_up_pods"].values == (1, 2, 4, 8, 12)
    assert knobs["scale_up_pods"].path == SCALE_UP_PATH
    # A plain Kubernetes target renders no split: all on spot first, or all on-demand.
    assert knobs["spot_share"].values == (1.0, 0.0)
    assert knobs["spot_share"].path == SPOT_SHARE_PATH
    assert _dev_knobs("aws")["spot_share"].values == (1.0, 0.75, 0.5, 0.25, 0.0)
    managed = _dev_knobs("sagemaker")
    assert "scale_up_pods" not in managed
    assert "spot_share" not in managed
    assert "prewarm_lead_minutes" in managed


def test_a_candidates_fields_are_the_spec_paths_and_write_keeps_the_file() -> None:
    knobs = _dev_knobs()
    candidate = (("prewarm_lead_minutes", 6), ("scale_up_pods", 4), ("spot_share", 0.5))
    fields = field_values(candidate, knobs, {}, {})
    assert fields == {LEAD_PATH: 6, SCALE_UP_PATH: 4, SPOT_SHARE_PATH: 0.5}
    text = (REPO / "stacks" / "Pulumi.dev.yaml").read_text(encoding="utf-8")
    edited = edited_text(text, fields)
    service = yaml.safe_load(edited)["config"]["inferstack:service"]
    assert service["realtime"]["prewarm_lead_minutes"] == 6
    assert service["realtime"]["scaling"]["scale_up"] == {"pods": 4}
    assert service["batch"]["capacity"] == {
        "spot": True,
        "fallback": "on_demand",
        "spot_share": 0.5,
    }
    assert "# The default stack" in edited  # comments kept


@pytest.mark.parametrize(
    ("stack", "edits", "knob", "fragment"),
    [
        ("sagemaker-prod", (), "scale_up_pods", "a sagemaker stack: its scaler is SageMaker's own"),
        ("sagemaker-prod", (), "spot_share", "a sagemaker stack"),
        (
            "dev",
            (("prewarm: auto", "prewarm: 'off'"),),
            "prewarm_lead_minutes",
            "sets realtime.prewarm: off",
        ),
        ("dev", (("spot: true", "spot: false"),), "spot_share", "no batch pool on spot"),
    ],
)
def test_a_knob_the_stack_cannot_set_is_refused_with_why(
    capsys, tmp_path, stack, edits, knob, fragment
):
    folder = project(tmp_path, stack, *edits)
    code, _, err = tune(capsys, folder, "--stack", stack, "--days", "0.001", "--knobs", knob)
    assert code == 2
    assert "Traceback" not in err
    assert f"cannot set {knob!r}" in err
    assert fragment in err
    assert "drop it" in err
