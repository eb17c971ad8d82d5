"""Karpenter v1 objects of a planned service: one EC2NodeClass and a NodePool per pool.

Pure functions returning wire-form (camelCase) manifests, like the Kubernetes layer's builders,
so the tests validate them against the Karpenter CRDs without a Pulumi runtime.

- The realtime NodePool launches on-demand capacity only: a reclaimed node would break the
  latency budget. Its consolidation only removes empty nodes, and not before the realtime
  pool's scale-down stabilization has passed, so it never evicts a pod that is still starting
  or a replica that KEDA is about to need again.
- The batch NodePool allows spot and on-demand: Karpenter launches the cheapest offering it can
  get, which is spot while spot is there, and on-demand when spot is short. Several instance
  types widen the spot pools it can draw from.
- Both carry the `nvidia.com/gpu` NoSchedule taint, the tier label, `nvidia.com/gpu.present=true`
  (the NVIDIA device plugin's default affinity, without NFD), and a GPU limit equal to the
  pool's max replicas times its GPUs per replica, so Karpenter cannot buy past the sizing.

- Node lifetime: batch nodes expire monthly; realtime nodes never expire and are replaced by
  drift, because expiration ignores disruption budgets in Karpenter v1 (`REALTIME_EXPIRE_AFTER`).

Interruptions: the cluster's Karpenter (`controller.KarpenterController`) reads EC2's spot
warnings, state changes and scheduled health events from its one interruption queue
(`interruption`), cordons the node and drains it at once. A rebalance recommendation it does not
act on (`actionForMessage` in aws/karpenter-provider-aws
`pkg/controllers/interruption/controller.go` gives it NoAction): nothing here relies on it. So the
batch worker gets SIGTERM with the whole two-minute notice ahead of it; its grace
period (sizing's `termination_grace_seconds`) fits inside that notice. Pods therefore need no
instance metadata: the NodeClass keeps IMDSv2's hop limit at 1, so no pod can read the node
role's credentials from IMDS (the worker's own IMDS watcher stays unreachable there and SIGTERM
is its signal).
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Final

from inferstack.components.aws.options import AwsOptions
from inferstack.components.aws.tags import resource_tags
from inferstack.components.kubernetes.options import PoolPlacement
from inferstack.components.kubernetes.scaling import SCALE_DOWN_STABILIZATION_SECONDS
from inferstack.components.planning.clouds import Cloud
from inferstack.components.planning.plan import ServicePlan
from inferstack.components.planning.pools import BatchPool, Placement, Pool, RealtimePool, Tier
from inferstack.contract.clouds import KARPENTER_CAPACITY_TYPE
from inferstack.contract.labels import (
    GPU_PRESENT_LABEL,
    GPU_PRESENT_VALUE,
    PREFIX,
    SERVICE_LABEL,
    TIER_BATCH,
    TIER_LABEL,
    TIER_REALTIME,
)
from inferstack.contract.pods import GPU_RESOURCE

if TYPE_CHECKING:
    import pulumi

Manifest = dict[str, Any]
CAPACITY_TYPES: Final[dict[Placement, list[str]]] = {
    "on_demand": ["on-demand"],
    "spot_first": ["spot", "on-demand"],
    "spot_only": ["spot"],
}
"""The capacity types a pool's NodePool may launch: Karpenter takes the cheapest it can get."""

NODEPOOL_API: Final = "karpenter.sh/v1"
NODECLASS_API: Final = "karpenter.k8s.aws/v1"
NODECLASS_GROUP: Final = "karpenter.k8s.aws"
CAPACITY_TYPE_LABEL: Final = KARPENTER_CAPACITY_TYPE
"""Karpenter's label on every node it launches: `spot`, `on-demand` (or `reserved`)."""
NODEPOOL_LABEL: Final = "karpenter.sh/nodepool"
"""Karpenter's label naming the NodePool that launched a node: what the pods select."""
INSTANCE_TYPE_LABEL: Final = "node.kubernetes.io/instance-type"
INSTANCE_FAMILY_LABEL: Final = "karpenter.k8s.aws/instance-family"
GPU_TAINT: Final = {"key": GPU_RESOURCE, "value": "true", "effect": "NoSchedule"}
"""Only pods that tolerate it (GPU pods) land on the GPU nodes."""
MIN_BATCH_INSTANCE_TYPES: Final = 3
"""Spot is found by flexibility: the batch pool asks for at least this many instance types."""
BATCH_CONSOLIDATE_AFTER_SECONDS: Final = 60
"""An empty batch node goes after a minute: KEDA already waited out its cooldown before it
removed the last worker, and an idle GPU node bills by the second."""
BATCH_EXPIRE_AFTER: Final = "720h"
"""Batch nodes are replaced monthly (Karpenter's own default, made visible). Expiration is
forceful in Karpenter v1: an expired node is deleted whatever the NodePool's disruption budgets
say, with no replacement launched first (karpenter.sh, Concepts, "Disruption": Expiration is a
forceful method; budgets only rate-limit the graceful ones, Drift, Consolidation and Emptiness).
Batch work tolerates it: the worker drains within its grace and the queue redelivers."""
REALTIME_EXPIRE_AFTER: Final = "Never"
"""Realtime nodes never expire: nodes launched together for a spike would expire together,
all at once, under the serving pool. They are replaced through Drift instead (a new AMI behind
the alias, a changed NodeClass), which is graceful: a replacement first, one node at a time
under the realtime budget of "1"."""
IMDS_HOP_LIMIT: Final = 1
"""See the module docstring: pods never need instance metadata under Karpenter."""
SPREAD_LABEL: Final = f"{PREFIX}/capacity-spread"
"""The batch pool's split between spot and on-demand (`batch.capacity.spot_share`): each of
the two NodePools gives its nodes some of this label's values, and the pods spread evenly over
all of them (karpenter-blueprints, "Split Between On-Demand & Spot Instances",
https://aws-samples.github.io/karpenter-blueprints/blueprints/od-spot-split/)."""
MAX_SPREAD_VALUES: Final = 10
"""The split is rendered as k of at most this many values: a share to the nearest tenth."""


def spot_split(pool: Pool) -> tuple[int, int] | None:
    """(values for spot, all values) of a batch pool whose spot share is strictly between 0
    and 1; None when every replica goes one way (no second NodePool, no spread)."""
    if not isinstance(pool, BatchPool) or pool.placement == "on_demand":
        return None
    share = pool.sizing.spot_share.value
    if share <= 0 or share >= 1:
        return None
    fraction = Fraction(share).limit_denominator(MAX_SPREAD_VALUES)
    total = max(2, fraction.denominator)
    spot = min(total - 1, max(1, round(share * total)))
    return spot, total


def _spread_values(split: tuple[int, int]) -> tuple[list[str], list[str]]:
    """The label's values on spot nodes and on on-demand nodes: disjoint, together 1..total."""
    spot, total = split
    values = [str(value) for value in range(1, total + 1)]
    return values[total - spot :], values[: total - spot]


def node_class_name(plan: ServicePlan) -> str:
    """The EC2NodeClass's name (both NodePools reference it)."""
    return f"{plan.spec.name}-gpu"


def node_pool_name(plan: ServicePlan, tier: Tier) -> str:
    """A pool's NodePool name; also the value of `karpenter.sh/nodepool` on its nodes."""
    return f"{plan.spec.name}-{tier}"


def instance_types(plan: ServicePlan, pool: Pool) -> list[str]:
    """The EC2 instance types that carry the pool's GPU and hold one replica (the cloud table)."""
    machines = _aws_cloud(plan).machines_for(pool.gpu.type)
    assert machines is not None  # plan_service refuses a GPU the cloud lacks
    return [size.name for size in machines.fitting(pool.gpu.count)]


def gpu_limit(pool: Pool) -> int:
    """GPUs the NodePool may hold: the pool's max replicas times its GPUs per replica."""
    return pool.sizing.max_replicas.value * pool.gpu.count


def realtime_consolidate_after_seconds(pool: RealtimePool) -> int:
    """No shorter than the realtime scale-down stabilization, nor than a replica's startup."""
    return max(SCALE_DOWN_STABILIZATION_SECONDS, pool.sizing.startup_seconds.value)


def _aws_cloud(plan: ServicePlan) -> Cloud:
    cloud = plan.cloud
    assert cloud is not None, "Karpenter objects need a plan for the aws target"
    assert cloud.name == "aws", "Karpenter objects need a plan for the aws target"
    return cloud


def _labels(plan: ServicePlan, tier: Tier) -> dict[str, str]:
    return resource_tags(plan, **{TIER_LABEL: TIER_REALTIME if tier == "realtime" else TIER_BATCH})


def _requirement(key: str, values: list[str], min_values: int | None = None) -> Manifest:
    requirement: Manifest = {"key": key, "operator": "In", "values": values}
    if min_values is not None:
        requirement["minValues"] = min_values
    return requirement


def node_pool(plan: ServicePlan, pool: Pool) -> Manifest:
    """The NodePool of one pool (see the module docstring for what each part guarantees)."""
    types = instance_types(plan, pool)
    capacity = list(CAPACITY_TYPES[pool.placement])
    if isinstance(pool, RealtimePool):
        disruption: Manifest = {
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": f"{realtime_consolidate_after_seconds(pool)}s",
            # One node at a time for drift and emptiness. This budget cannot hold back
            # expiration (forceful in Karpenter v1), hence REALTIME_EXPIRE_AFTER "Never".
            "budgets": [{"nodes": "1"}],
        }
        expire_after = REALTIME_EXPIRE_AFTER
        type_requirement = _requirement(INSTANCE_TYPE_LABEL, types)
    else:
        disruption = {
            # Only empty nodes: consolidating a busy one restarts jobs of up to max_job_seconds.
            "consolidationPolicy": "WhenEmpty",
            "consolidateAfter": f"{BATCH_CONSOLIDATE_AFTER_SECONDS}s",
            "budgets": [{"nodes": "10%"}],
        }
        expire_after = BATCH_EXPIRE_AFTER
        type_requirement = _requirement(
            INSTANCE_TYPE_LABEL, types, min(MIN_BATCH_INSTANCE_TYPES, len(types))
        )
    split = spot_split(pool)
    requirements = [
        _requirement(CAPACITY_TYPE_LABEL, capacity),
        type_requirement,
        _requirement("kubernetes.io/arch", ["amd64"]),
        _requirement("kubernetes.io/os", ["linux"]),
    ]
    if split is not None:
        requirements.append(_requirement(SPREAD_LABEL, _spread_values(split)[0]))
    labels = _labels(plan, pool.tier)
    # The device plugin's DaemonSet schedules only on nodes its affinity recognises: label the
    # GPU nodes so it runs without Node Feature Discovery.
    node_labels = {**labels, GPU_PRESENT_LABEL: GPU_PRESENT_VALUE}
    return {
        "apiVersion": NODEPOOL_API,
        "kind": "NodePool",
        "metadata": {"name": node_pool_name(plan, pool.tier), "labels": dict(labels)},
        "spec": {
            "template": {
                "metadata": {"labels": node_labels},
                "spec": {
                    "nodeClassRef": {
                        "group": NODECLASS_GROUP,
                        "kind": "EC2NodeClass",
                        "name": node_class_name(plan),
                    },
                    "requirements": requirements,
                    "taints": [dict(GPU_TAINT)],
                    "expireAfter": expire_after,
                },
            },
            "disruption": disruption,
            "limits": {GPU_RESOURCE: str(gpu_limit(pool))},
        },
    }


def on_demand_node_pool(plan: ServicePlan, pool: Pool) -> Manifest | None:
    """The batch pool's on-demand share (`spot_split`): its NodePool launches on-demand only,
    with the spread label's other values; None when the pool is not split."""
    split = spot_split(pool)
    if split is None:
        return None
    manifest = copy.deepcopy(node_pool(plan, pool))
    manifest["metadata"]["name"] = f"{node_pool_name(plan, pool.tier)}-on-demand"
    template = manifest["spec"]["template"]["spec"]
    template["requirements"] = [
        _requirement(CAPACITY_TYPE_LABEL, list(CAPACITY_TYPES["on_demand"])),
        *(
            r
            for r in template["requirements"]
            if r["key"] not in (CAPACITY_TYPE_LABEL, SPREAD_LABEL)
        ),
        _requirement(SPREAD_LABEL, _spread_values(split)[1]),
    ]
    return manifest


def node_pools(plan: ServicePlan) -> list[tuple[str, Manifest]]:
    """Every NodePool of the plan with its role: one per pool, and the batch pool's on-demand
    share when it is split."""
    found: list[tuple[str, Manifest]] = []
    for pool in plan.pools:
        found.append((pool.tier, node_pool(plan, pool)))
        extra = on_demand_node_pool(plan, pool)
        if extra is not None:
            found.append((f"{pool.tier}-on-demand", extra))
    return found


def _block_devices(options: AwsOptions) -> list[Manifest]:
    volume: Manifest = {
        "volumeSize": f"{options.root_volume_gib}Gi",
        "volumeType": "gp3",
        "encrypted": True,
        "deleteOnTermination": True,
    }
    if options.kms_key_arn:
        volume["kmsKeyID"] = options.kms_key_arn
    if options.ami_family == "bottlerocket":
        # Bottlerocket keeps images and containers on its second (data) volume.
        os_volume = {**volume, "volumeSize": "4Gi"}
        return [
            {"deviceName": "/dev/xvda", "ebs": os_volume},
            {"deviceName": "/dev/xvdb", "rootVolume": True, "ebs": volume},
        ]
    return [{"deviceName": "/dev/xvda", "rootVolume": True, "ebs": volume}]


def node_class(plan: ServicePlan, options: AwsOptions, node_role: pulumi.Input[str]) -> Manifest:
    """The EC2NodeClass: NVIDIA-ready AMI, subnets and security groups, IMDSv2, encrypted disk.

    `node_role` is the node IAM role's name (a string or a Pulumi Output).
    """
    if options.subnet_ids:
        subnets: list[Manifest] = [{"id": subnet} for subnet in options.subnet_ids]
    else:
        subnets = [{"tags": dict(options.subnet_selector)}]
    return {
        "apiVersion": NODECLASS_API,
        "kind": "EC2NodeClass",
        "metadata": {"name": node_class_name(plan), "labels": _labels(plan, "realtime")},
        "spec": {
            "role": node_role,
            # The alias resolves to the accelerated (NVIDIA driver + container toolkit) AMI for
            # GPU instance types.
            "amiSelectorTerms": [{"alias": options.ami_alias}],
            "subnetSelectorTerms": subnets,
            "securityGroupSelectorTerms": [{"tags": options.security_groups()}],
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": IMDS_HOP_LIMIT,
                "httpTokens": "required",
            },
            "blockDeviceMappings": _block_devices(options),
            "tags": resource_tags(plan),
        },
    }


def placement(plan: ServicePlan, tier: Tier) -> PoolPlacement:
    """What puts a pool's pods on its own NodePool's nodes: Karpenter's `karpenter.sh/nodepool`
    label. The pods already tolerate the `nvidia.com/gpu` taint; no other taint is added."""
    pool = plan.pool(tier) if any(p.tier == tier for p in plan.pools) else None
    if pool is not None and spot_split(pool) is not None:
        # Two NodePools: select the labels both give their nodes, spread over the split's.
        return PoolPlacement(
            node_selector={SERVICE_LABEL: plan.spec.name, TIER_LABEL: TIER_BATCH},
            spread_label=SPREAD_LABEL,
        )
    return PoolPlacement(node_selector={NODEPOOL_LABEL: node_pool_name(plan, tier)})


__all__ = [
    "CAPACITY_TYPES",
    "CAPACITY_TYPE_LABEL",
    "GPU_TAINT",
    "NODEPOOL_LABEL",
    "gpu_limit",
    "instance_types",
    "node_class",
    "node_class_name",
    "node_pool",
    "node_pool_name",
    "node_pools",
    "on_demand_node_pool",
    "placement",
    "spot_split",
]
