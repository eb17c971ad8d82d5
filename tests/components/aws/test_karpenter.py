"""The Karpenter objects: strictly valid against the v1 CRDs, and shaped the way the plan says."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from inferstack.components.aws import karpenter
from inferstack.components.kubernetes.scaling import SCALE_DOWN_STABILIZATION_SECONDS
from inferstack.components.planning.pools import Tier
from inferstack.contract.labels import TIER_LABEL
from inferstack.contract.pods import GPU_RESOURCE
from tests.components import schemas
from tests.components.aws.factories import make_options, make_plan

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

ROLE = "inference-prod-embedder-gpu-node"


def _requirement(pool: dict[str, Any], key: str) -> dict[str, Any]:
    requirements = pool["spec"]["template"]["spec"]["requirements"]
    return next(r for r in requirements if r["key"] == key)


@pytest.fixture(scope="module")
def plan():
    return make_plan()


@pytest.mark.parametrize("pool", ["realtime", "batch"])
def test_node_pools_validate_strictly(plan, pool: Tier) -> None:
    schemas.validate(karpenter.node_pool(plan, plan.pool(pool)))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"ami_family": "bottlerocket"},
        {"subnet_ids": ["subnet-0abc", "subnet-0def"], "subnet_selector": {}},
        {"kms_key_arn": KEY_ARN},
    ],
    ids=["al2023", "bottlerocket", "subnet-ids", "kms"],
)
def test_node_class_validates_strictly(plan, options: dict[str, Any]) -> None:
    schemas.validate(karpenter.node_class(plan, make_options(**options), ROLE))


def test_an_unknown_field_fails_validation(plan) -> None:
    manifest = karpenter.node_pool(plan, plan.pool("realtime"))
    manifest["spec"]["template"]["spec"]["capacityType"] = "on-demand"
    with pytest.raises(jsonschema.ValidationError, match="capacityType"):
        schemas.validate(manifest)


def test_a_broken_cel_rule_fails_validation(plan) -> None:
    manifest = karpenter.node_class(plan, make_options(), ROLE)
    manifest["spec"]["instanceProfile"] = "both-role-and-profile"
    with pytest.raises(jsonschema.ValidationError, match="CEL rule failed"):
        schemas.validate(manifest)
    pool = karpenter.node_pool(plan, plan.pool("batch"))
    requirement = _requirement(pool, karpenter.INSTANCE_TYPE_LABEL)
    requirement["minValues"] = len(requirement["values"]) + 1
    with pytest.raises(jsonschema.ValidationError, match="minValues"):
        schemas.validate(pool)
    restricted = copy.deepcopy(karpenter.node_pool(plan, plan.pool("batch")))
    restricted["spec"]["template"]["metadata"]["labels"]["karpenter.sh/nodepool"] = "x"
    with pytest.raises(jsonschema.ValidationError, match="CEL rule failed"):
        schemas.validate(restricted)


def test_realtime_pool_is_on_demand_only_with_the_gpu_instance_types(plan) -> None:
    pool = karpenter.node_pool(plan, plan.pool("realtime"))
    assert _requirement(pool, "karpenter.sh/capacity-type")["values"] == ["on-demand"]
    types = _requirement(pool, karpenter.INSTANCE_TYPE_LABEL)["values"]
    assert types
    assert all(t.startswith("g6.") for t in types)  # L4 -> g6
    assert pool["spec"]["template"]["spec"]["taints"] == [
        {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
    ]
    assert pool["spec"]["template"]["metadata"]["labels"][TIER_LABEL] == "realtime"


def test_realtime_consolidation_waits_out_the_scale_down_stabilization(plan) -> None:
    disruption = karpenter.node_pool(plan, plan.pool("realtime"))["spec"]["disruption"]
    assert disruption["consolidationPolicy"] == "WhenEmpty"
    seconds = int(disruption["consolidateAfter"].removesuffix("s"))
    assert seconds >= SCALE_DOWN_STABILIZATION_SECONDS
    assert seconds >= plan.sizing.realtime.startup_seconds.value


def test_gpu_limits_follow_the_pools_max_replicas(plan) -> None:
    realtime = karpenter.node_pool(plan, plan.pool("realtime"))["spec"]["limits"]
    batch = karpenter.node_pool(plan, plan.pool("batch"))["spec"]["limits"]
    assert realtime == {GPU_RESOURCE: str(plan.sizing.realtime.max_replicas.value)}
    assert batch == {GPU_RESOURCE: str(plan.sizing.batch.max_replicas.value)}
    two = make_plan(batch__gpu={"type": "nvidia-l4", "count": 2})
    assert karpenter.gpu_limit(two.pool("batch")) == 2 * two.sizing.batch.max_replicas.value


def test_batch_pool_takes_spot_first_and_several_instance_types(plan) -> None:
    pool = karpenter.node_pool(plan, plan.pool("batch"))
    assert _requirement(pool, "karpenter.sh/capacity-type")["values"] == ["spot", "on-demand"]
    types = _requirement(pool, karpenter.INSTANCE_TYPE_LABEL)
    assert len(types["values"]) >= 3
    assert types["minValues"] == 3


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        ({"spot": True, "fallback": "none"}, ["spot"]),
        ({"spot": False, "fallback": "on_demand"}, ["on-demand"]),
    ],
)
def test_batch_capacity_follows_the_spec(capacity: dict[str, Any], expected: list[str]) -> None:
    plan = make_plan(batch__capacity=capacity)
    pool = karpenter.node_pool(plan, plan.pool("batch"))
    assert _requirement(pool, "karpenter.sh/capacity-type")["values"] == expected


def test_a_gpu_with_one_instance_type_asks_for_what_there_is() -> None:
    plan = make_plan(
        realtime__gpu={"type": "nvidia-h100-80gb", "count": 1},
        batch__gpu={"type": "nvidia-h100-80gb", "count": 1},
    )
    pool = karpenter.node_pool(plan, plan.pool("batch"))
    types = _requirement(pool, karpenter.INSTANCE_TYPE_LABEL)
    assert types["values"] == ["p5.48xlarge"]
    assert types["minValues"] == 1
    schemas.validate(pool)


def test_multi_gpu_replicas_only_get_instances_that_hold_them() -> None:
    plan = make_plan(realtime__gpu={"type": "nvidia-l4", "count": 4})
    types = karpenter.instance_types(plan, plan.pool("realtime"))
    assert types == ["g6.12xlarge", "g6.24xlarge", "g6.48xlarge"]


def test_node_class_requires_imdsv2_and_encrypts_a_root_volume_sized_for_the_image(plan) -> None:
    spec = karpenter.node_class(plan, make_options(root_volume_gib=150), ROLE)["spec"]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    [root] = spec["blockDeviceMappings"]
    assert root["rootVolume"] is True
    assert root["ebs"]["encrypted"] is True
    assert root["ebs"]["volumeSize"] == "150Gi"
    assert spec["role"] == ROLE
    assert spec["securityGroupSelectorTerms"] == [
        {"tags": {"karpenter.sh/discovery": "inference-prod"}}
    ]


def test_bottlerocket_sizes_its_data_volume() -> None:
    spec = karpenter.node_class(make_plan(), make_options(ami_family="bottlerocket"), ROLE)["spec"]
    devices = {d["deviceName"]: d for d in spec["blockDeviceMappings"]}
    assert devices["/dev/xvdb"]["rootVolume"] is True
    assert devices["/dev/xvdb"]["ebs"]["volumeSize"] == "100Gi"
    assert "rootVolume" not in devices["/dev/xvda"]
