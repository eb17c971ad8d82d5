"""GKE GPU node pools: realtime on-demand, batch on Spot VMs, batch on-demand fallback.

`pool_plans` decides every pool as plain data (machine, accelerator, bounds, labels, taints)
from the plan and the options, so tests and the policy fixtures read the same decisions the
Pulumi resources are built from; `node_pool` turns one into a `gcp.container.NodePool`.

Why three pools and not one mixed pool: GKE labels a Spot node `cloud.google.com/gke-spot=true`
and nothing else on a mixed pool tells a scheduler where a reclaim will hit. The realtime pool is
on-demand only and its pods select it by name; the two batch pools carry the ComputeClass label
and taint, so only pods that select the class (the batch pool's) land there, and the class's
priorities (not the pods) decide spot first, on-demand when spot is gone, back to spot later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from inferstack.components.gcp.labels import SERVICE_KEY
from inferstack.components.gcp.options import POOL_SUFFIXES, GcpOptions, PoolRole
from inferstack.components.planning import pools as planned
from inferstack.components.planning.clouds import GCP
from inferstack.components.planning.plan import ServicePlan
from inferstack.components.planning.pools import BatchPool, Pool, RealtimePool
from inferstack.components.planning.spec import Gpu
from inferstack.contract.clouds import GKE_PROVISIONING, GKE_SPOT
from inferstack.contract.labels import SERVICE_LABEL, TIER_BATCH, TIER_LABEL, TIER_REALTIME
from inferstack.contract.pods import GPU_RESOURCE

if TYPE_CHECKING:
    import pulumi
    import pulumi_gcp as gcp

NODE_POOL_LABEL: Final = str(GCP.node_pool_label)
"""The label GKE puts on every node with its pool's name (from the GCP cloud table)."""
COMPUTE_CLASS_LABEL: Final = "cloud.google.com/compute-class"
"""Label (and taint) key that ties a node pool to a ComputeClass; pods select the class by it."""
SPOT_TAINT_KEY: Final = GKE_SPOT
"""GKE's spot label, used as the spot pool's taint too (see `inferstack.contract.clouds`)."""
GPU_TAINT_VALUE: Final = "present"
GPU_DRIVER_VERSION: Final = str(GCP.gpu_driver_version)
"""GKE installs the newest driver its node version supports (`gpu-driver-version=latest`)."""
NODE_SCOPES: Final = ("https://www.googleapis.com/auth/cloud-platform",)
"""With a dedicated node service account, IAM (not scopes) decides what nodes may do."""
BOOT_DISK_GB: Final = 100
BOOT_DISK_TYPE: Final = "pd-balanced"
GKE_POD_SHUTDOWN_SECONDS: Final = 15
"""Of the 30 s Spot notice, what GKE's graceful node shutdown gives non-system pods (the other
15 s are for critical system pods): the batch pool's grace must fit this share."""


@dataclass(frozen=True)
class Taint:
    """A node taint in Kubernetes form (the node pool's API spells the effect NO_SCHEDULE)."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def gke_effect(self) -> str:
        """The effect as the GKE API spells it."""
        return {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}[self.effect]


@dataclass(frozen=True)
class PoolPlan:
    """One GPU node pool, decided: what it runs on, how far it scales, how it is marked."""

    role: PoolRole
    name: str
    machine_type: str
    accelerator: str
    accelerators_per_node: int
    spot: bool
    min_nodes: int
    max_nodes: int
    bounds_reason: str
    labels: dict[str, str]
    taints: list[Taint] = field(default_factory=list)

    @property
    def tier(self) -> str:
        """The tier label value of the pool."""
        return TIER_REALTIME if self.role == "realtime" else TIER_BATCH


def pool_name(service: str, role: PoolRole) -> str:
    """GKE name of a pool: `<service>-<role>`."""
    return f"{service}-{POOL_SUFFIXES[role]}"


def compute_class_name(service: str) -> str:
    """The batch pool's ComputeClass (cluster-scoped, so it carries the service name)."""
    return f"{service}-batch"


def _gpu_taint() -> Taint:
    return Taint(GPU_RESOURCE, GPU_TAINT_VALUE)


def _machine(plan: ServicePlan, gpu: Gpu) -> tuple[str, str, int]:
    """(machine type, accelerator, GPUs per node) for `gpu` from the plan's GCP table."""
    cloud = plan.cloud
    assert cloud is not None, "a GCP node pool needs a plan for the gcp target"
    machines = cloud.machines_for(gpu.type)
    assert machines is not None, gpu.type  # the plan refuses GPUs GCE lacks
    assert machines.accelerator is not None, gpu.type
    size = machines.fitting(gpu.count)[0]
    return size.name, machines.accelerator, size.gpus


def _bounds(pool: Pool, per_node: int) -> tuple[int, int, str]:
    low_replicas, high_replicas = pool.sizing.min_replicas.value, pool.sizing.max_replicas.value
    low = math.ceil(low_replicas / per_node)
    high = max(1, math.ceil(high_replicas / per_node))
    reason = (
        f"{low_replicas}-{high_replicas} replicas from sizing at {per_node} per node"
        if per_node > 1
        else f"{low_replicas}-{high_replicas} replicas from sizing, one per node"
    )
    return low, high, reason


BATCH_ROLES: Final[dict[planned.Placement, tuple[PoolRole, ...]]] = {
    "spot_first": ("spot", "fallback"),
    "spot_only": ("spot",),
    "on_demand": ("fallback",),
}
"""The node pools a batch pool's placement needs: Spot VMs, on-demand VMs, or both."""


def pool_plans(plan: ServicePlan, options: GcpOptions) -> list[PoolPlan]:
    """Every GPU node pool the plan needs: realtime, then the batch spot and fallback pools."""
    pools: list[PoolPlan] = []
    if plan.realtime is not None:
        pools.append(_realtime_pool_plan(plan, plan.realtime))
    if plan.batch is not None:
        pools += _batch_pool_plans(plan, plan.batch)
    return pools


def _realtime_pool_plan(plan: ServicePlan, pool: RealtimePool) -> PoolPlan:
    service = plan.spec.name
    machine, accelerator, gpus = _machine(plan, pool.gpu)
    low, high, reason = _bounds(pool, gpus // pool.gpu.count)
    return PoolPlan(
        role="realtime",
        name=pool_name(service, "realtime"),
        machine_type=machine,
        accelerator=accelerator,
        accelerators_per_node=gpus,
        spot=False,
        min_nodes=low,
        max_nodes=high,
        bounds_reason=reason,
        labels={SERVICE_LABEL: service, TIER_LABEL: TIER_REALTIME},
        taints=[_gpu_taint()],
    )


def _batch_pool_plans(plan: ServicePlan, pool: BatchPool) -> list[PoolPlan]:
    service = plan.spec.name
    machine, accelerator, gpus = _machine(plan, pool.gpu)
    low, high, reason = _bounds(pool, gpus // pool.gpu.count)
    klass = compute_class_name(service)
    labels = {SERVICE_LABEL: service, TIER_LABEL: TIER_BATCH, COMPUTE_CLASS_LABEL: klass}
    roles = BATCH_ROLES[pool.placement]
    pools = []
    for role in roles:
        spot = role == "spot"
        taints = [_gpu_taint(), Taint(COMPUTE_CLASS_LABEL, klass)]
        if spot:
            # GKE does not taint Spot nodes in Standard clusters; this keeps every pod that
            # did not ask for spot off them, whatever else it selects.
            taints.append(Taint(SPOT_TAINT_KEY, "true"))
        pools.append(
            PoolPlan(
                role=role,
                name=pool_name(service, role),
                machine_type=machine,
                accelerator=accelerator,
                accelerators_per_node=gpus,
                spot=spot,
                # Both batch pools start empty: the class fills spot first, and the queue's
                # backlog (not a floor) brings the first replica.
                min_nodes=low if spot or len(roles) == 1 else 0,
                max_nodes=high,
                bounds_reason=reason,
                labels=dict(labels),
                taints=taints,
            )
        )
    return pools


def node_labels_on_gke(pool: PoolPlan) -> dict[str, str]:
    """The labels a node of `pool` carries once GKE has added its own (for scheduling tests)."""
    labels = {
        **pool.labels,
        NODE_POOL_LABEL: pool.name,
        "cloud.google.com/gke-accelerator": pool.accelerator,
        "node.kubernetes.io/instance-type": pool.machine_type,
        GKE_PROVISIONING: "spot" if pool.spot else "standard",
    }
    if pool.spot:
        labels[SPOT_TAINT_KEY] = "true"
    return labels


def node_pool(
    resource_name: str,
    pool: PoolPlan,
    options: GcpOptions,
    node_service_account: str,
    opts: pulumi.ResourceOptions,
) -> gcp.container.NodePool:
    """The `gcp.container.NodePool` for one decided pool, on the existing cluster."""
    import pulumi_gcp as gcp

    container = gcp.container
    accelerator = container.NodePoolNodeConfigGuestAcceleratorArgs(
        type=pool.accelerator,
        count=pool.accelerators_per_node,
        gpu_driver_installation_config=(
            container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                gpu_driver_version=GPU_DRIVER_VERSION
            )
        ),
    )
    node_config = container.NodePoolNodeConfigArgs(
        machine_type=pool.machine_type,
        guest_accelerators=[accelerator],
        spot=pool.spot,
        labels=pool.labels,
        taints=[
            container.NodePoolNodeConfigTaintArgs(key=t.key, value=t.value, effect=t.gke_effect())
            for t in pool.taints
        ],
        service_account=node_service_account,
        oauth_scopes=list(NODE_SCOPES),
        # GKE_METADATA: pods see the Workload Identity metadata server, never the node's identity.
        workload_metadata_config=container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
            mode="GKE_METADATA"
        ),
        shielded_instance_config=container.NodePoolNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_integrity_monitoring=True
        ),
        metadata={"disable-legacy-endpoints": "true"},
        disk_size_gb=BOOT_DISK_GB,
        disk_type=BOOT_DISK_TYPE,
        image_type="COS_CONTAINERD",
        resource_labels={SERVICE_KEY: pool.labels[SERVICE_LABEL], "tier": pool.tier},
    )
    return container.NodePool(
        resource_name,
        name=pool.name,
        project=options.project,
        location=options.location,
        cluster=options.cluster,
        node_locations=list(options.node_locations) or None,
        # Per zone, and changing it replaces the pool: the autoscaler keeps the totals after.
        initial_node_count=math.ceil(pool.min_nodes / max(1, len(options.node_locations))),
        autoscaling=container.NodePoolAutoscalingArgs(
            total_min_node_count=pool.min_nodes,
            total_max_node_count=pool.max_nodes,
            # Spot: take capacity wherever a zone has it; on-demand: spread across zones.
            location_policy="ANY" if pool.spot else "BALANCED",
        ),
        management=container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
        upgrade_settings=container.NodePoolUpgradeSettingsArgs(
            strategy="SURGE", max_surge=1, max_unavailable=0
        ),
        node_config=node_config,
        opts=opts,
    )


@dataclass(frozen=True)
class Placement:
    """Where one tier's pods must run: a node selector and the tolerations of its pools' taints."""

    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]


def pod_placement(pools: Sequence[PoolPlan]) -> dict[str, Placement]:
    """By tier: realtime pods select their pool by name; batch pods select the ComputeClass.

    The GPU taint is tolerated by the Kubernetes layer already; the spot taint by its spot
    tolerations (batch pods with spot capacity only). What is left is the class taint.
    """
    placement: dict[str, Placement] = {}
    for pool in pools:
        if pool.role == "realtime":
            placement[TIER_REALTIME] = Placement({NODE_POOL_LABEL: pool.name}, [])
        elif TIER_BATCH not in placement:
            klass = pool.labels[COMPUTE_CLASS_LABEL]
            toleration = {
                "key": COMPUTE_CLASS_LABEL,
                "operator": "Equal",
                "value": klass,
                "effect": "NoSchedule",
            }
            placement[TIER_BATCH] = Placement({COMPUTE_CLASS_LABEL: klass}, [toleration])
    return placement


def pools_by_role(pools: Sequence[PoolPlan]) -> dict[PoolRole, PoolPlan]:
    """The pools keyed by role."""
    return {pool.role: pool for pool in pools}


__all__ = [
    "COMPUTE_CLASS_LABEL",
    "NODE_POOL_LABEL",
    "Placement",
    "PoolPlan",
    "Taint",
    "compute_class_name",
    "node_labels_on_gke",
    "node_pool",
    "pod_placement",
    "pool_name",
    "pool_plans",
]
