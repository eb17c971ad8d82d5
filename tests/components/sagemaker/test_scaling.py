"""SageMaker's scaling derived from the plan: the cron translation and the bounds' reasons."""

from __future__ import annotations

import pytest

from inferstack.components.sagemaker.scaling import async_scaling, aws_cron, realtime_scaling
from tests.components.sagemaker.factories import make_plan


# Application Auto Scaling's cron is cron(Minutes Hours Day-of-month Month Day-of-week Year),
# days 1-7 from SUN or SUN-SAT, `?` in one day field ("Schedule recurring scaling actions using
# cron expressions", https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html).
@pytest.mark.parametrize(
    ("unix", "expected"),
    [
        ("56 8 * * 1-5", "cron(56 8 ? * MON-FRI *)"),
        ("0 9 * * 0,6", "cron(0 9 ? * SUN,SAT *)"),
        ("0 9 * * 7", "cron(0 9 ? * SUN *)"),
        ("30 2 1 * *", "cron(30 2 1 * ? *)"),
        ("0 9 * * mon", "cron(0 9 ? * MON *)"),
    ],
)
def test_unix_cron_becomes_aws_cron(unix: str, expected: str) -> None:
    assert aws_cron(unix) == expected


@pytest.mark.parametrize("unix", ["0 9 1 * 1", "0 9 * * */2", "0 9 * *"])
def test_what_aws_cron_cannot_say_is_refused(unix: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        aws_cron(unix)


def test_scale_to_zero_sets_a_zero_floor_and_a_wake_alarm() -> None:
    plan = make_plan(
        batch=None,
        traffic__baseline_rps=0,
        realtime__scale_to_zero=True,
        realtime__allow_cold_start_over_budget=True,
        realtime__scaling__min_replicas=0,
    )
    assert plan.realtime is not None
    scaling = realtime_scaling(plan, plan.realtime)
    assert scaling.min_copies.value == 0
    assert scaling.initial_copies.value == 1
    assert scaling.wake is not None
    assert scaling.wake.metric == "NoCapacityInvocationFailures"
    assert "answers every request with an error" in scaling.wake.reason


def test_async_concurrency_is_one_batch_per_instance() -> None:
    plan = make_plan()
    assert plan.batch is not None
    scaling = async_scaling(plan, plan.batch)
    assert scaling.max_concurrent_invocations.value == plan.batch.sizing.batch_size.value
    assert scaling.instance_type == "ml.g6.xlarge"
    assert scaling.wake is not None
    assert scaling.wake.metric == "HasBacklogWithoutCapacity"
