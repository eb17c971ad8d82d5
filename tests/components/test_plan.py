"""The plan and the per-cloud tables: sized once, priced from those numbers, GPUs a cloud has."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args

import pytest

from inferstack.components.planning.clouds import CLOUDS, spot_notice
from inferstack.components.planning.cost import estimate_cost
from inferstack.components.planning.gpus import GPU_TYPES
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.pricing import default_price_table, machine_price
from inferstack.components.planning.sizing import size_service
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.contract.clouds import INTERRUPTION_NOTICE_SECONDS
from inferstack.errors import SpecError
from tests.components.factories import make_profile, make_spec

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_the_plan_carries_the_sizing_and_the_cost_of_that_sizing() -> None:
    spec, profile = make_spec(), make_profile()
    plan = plan_service(spec, profile, now=NOW)
    assert plan.sizing == size_service(spec, profile, now=NOW)
    assert plan.cost == estimate_cost(spec, profile, plan.sizing, "aws")
    assert plan.cloud is None
    assert plan.price_cloud.name == spec.price_cloud
    assert plan.to_dict()["sizing"] == plan.sizing.to_dict()


def test_cost_prices_the_replicas_the_plan_sized() -> None:
    plan = plan_service(make_spec(), make_profile(), now=NOW)
    realtime = plan.sizing.realtime
    assert realtime is not None
    note = next(n for n in plan.cost.notes if n.startswith("realtime naive"))
    assert f"batched: {realtime.peak_replicas.value};" in note
    assert realtime.max_replicas.value == realtime.peak_replicas.value  # `auto` max = the peak


def test_a_cloud_target_prices_on_its_own_cloud_and_drains_within_its_notice() -> None:
    plan = plan_service(make_spec(price_cloud="aws"), make_profile(), target="gcp", now=NOW)
    assert plan.price_cloud.name == "gcp"
    assert plan.cloud is CLOUDS["gcp"]
    assert plan.sizing.batch is not None
    assert (
        plan.sizing.batch.termination_grace_seconds.value == INTERRUPTION_NOTICE_SECONDS["gcp"] - 15
    )
    assert "g2-standard-8" in plan.cost.price_source


def test_a_gpu_the_target_cloud_lacks_is_refused_with_the_field() -> None:
    spec = make_spec(realtime={"gpu": {"type": "nvidia-a10g"}})
    with pytest.raises(SpecError) as caught:
        plan_service(spec, make_profile(), target="gcp", now=NOW)
    (problem,) = caught.value.problems
    assert problem.path == "realtime.gpu.type"
    assert "nvidia-a10g is not offered on GCP" in problem.message
    assert "nvidia-l4" in problem.message  # names what to use instead
    # A plain Kubernetes stack priced on GCP still plans, priced on the stand-in machine.
    assert (
        plan_service(
            make_spec(realtime={"gpu": {"type": "nvidia-a10g"}}, price_cloud="gcp"),
            make_profile(),
            now=NOW,
        ).cost.naive_monthly_usd
        > 0
    )


def _batch_only(gpu: dict[str, object]) -> InferenceServiceSpec:
    pool = {"gpu": gpu, "queue": {"kind": "sqs"}, "scaling": {"max_replicas": 4}}
    return make_spec(batch=pool, realtime=None)


def test_more_gpus_than_one_machine_holds_are_refused() -> None:
    spec = _batch_only({"type": "nvidia-l4", "count": 8})
    assert plan_service(spec, make_profile(), target="aws", now=NOW).sizing.batch is not None
    spec = _batch_only({"type": "nvidia-t4", "count": 8})
    with pytest.raises(SpecError) as caught:
        plan_service(spec, make_profile(), target="gcp", now=NOW)
    assert [p.path for p in caught.value.problems] == ["batch.gpu.count"]
    assert "at most 2" in caught.value.problems[0].message


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_every_gpu_is_priced_on_every_cloud(cloud: str) -> None:
    table = default_price_table()
    provider = CLOUDS[cloud]  # type: ignore[index]
    # A plain cluster's price cloud prices every GPU; a managed target without spot (Cloud Run
    # offers only the L4) prices what it offers, and its plan refuses the rest by name.
    for gpu in GPU_TYPES if provider.offers_spot else sorted(provider.machines):
        machines = provider.machines_for(gpu) or provider.machines_for(
            provider.price_stand_ins[gpu]
        )
        assert machines is not None, gpu
        assert machines.priced.name in table.instances[cloud], (cloud, gpu)
        assert machines.priced.gpus == table.instances[cloud][machines.priced.name]["gpus"]
        assert machine_price(gpu, cloud).on_demand_per_gpu_hour > 0  # type: ignore[arg-type]
    assert set(provider.machines) <= set(GPU_TYPES)


def test_the_spec_offers_exactly_the_clouds_of_the_table() -> None:
    annotation = InferenceServiceSpec.model_fields["price_cloud"].annotation
    # A plain cluster sits on a cloud that sells nodes; SageMaker hosts endpoints, not clusters.
    assert set(get_args(annotation)) == {n for n, c in CLOUDS.items() if c.offers_spot}


def test_spot_notice_per_target() -> None:
    assert spot_notice("aws") == (120, "the AWS spot notice")
    assert spot_notice("gcp")[0] == 30
    # Any cluster may sit on any cloud: the shortest notice of all.
    assert spot_notice("kubernetes") == (30, "the shortest spot notice of AWS and GCP")
    # SageMaker hosting sells no spot: its batch pool drains within the shortest notice.
    assert spot_notice("sagemaker") == spot_notice("kubernetes")
    for cloud in (cloud for cloud in CLOUDS.values() if cloud.offers_spot):
        assert cloud.spot_notice_seconds == INTERRUPTION_NOTICE_SECONDS[cloud.name]
        assert {label.provider for label in cloud.spot_labels} == {cloud.name}
        assert cloud.capacity_type_label in {label.key for label in cloud.spot_labels}
