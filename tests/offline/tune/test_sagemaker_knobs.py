"""What `tune` may turn on a SageMaker stack: only what SageMaker reads.

The table (`knobs.target_knobs`) says which knobs a SageMaker stack cannot set; these tests tie
each SageMaker row to the component: a spec field the table calls unread must leave the
rendered scaling unchanged, and one it calls settable must move it.
"""

from __future__ import annotations

import pytest

from inferstack.components.sagemaker.scaling import realtime_scaling
from inferstack.offline.tune.knobs import target_knobs, unsettable_reason
from tests.components.sagemaker.factories import make_plan


def _target(**spec_changes: object) -> float:
    plan = make_plan(**spec_changes)
    assert plan.realtime is not None
    return float(realtime_scaling(plan, plan.realtime).target_concurrency.value)


def test_sagemaker_searches_floor_ceiling_batching_and_prewarm_only() -> None:
    knobs = target_knobs("sagemaker")
    assert {"min_replicas", "max_replicas", "prewarm", "prewarm_lead_minutes"} <= knobs
    # The runtime in the container runs the batcher: its knobs move the concurrency target.
    assert {"max_batch_size", "max_queue_delay_ms"} <= knobs
    for name in ("metric", "target_factor", "scale_up_pods", "spot_share"):
        assert name not in knobs
        reason = unsettable_reason("sagemaker", name)
        assert reason, name


@pytest.mark.parametrize(
    "change",
    [
        {"realtime__scaling__metric": "rps"},
        {"realtime__scaling__metric": "in_flight"},
        {"realtime__scaling__target_per_replica": 3.0},
    ],
)
def test_the_fields_sagemaker_cannot_set_leave_its_target_alone(change: dict[str, object]) -> None:
    assert _target(**change) == _target()


def test_batching_moves_the_concurrency_target() -> None:
    assert _target(batching__max_queue_delay_ms=1) != _target(batching__max_queue_delay_ms=5)
