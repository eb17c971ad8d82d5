"""The plan: a service sized once, from its spec, its measured profile, its target and prices.

Built by the stack program (the only reader of Pulumi config) and handed to every consumer: the
Kubernetes component, the cloud components, the cost table, the preview and the simulator. No
consumer sizes again, so the replicas a node pool is bounded by, the replicas KEDA may reach and
the replicas the cost table prices are the same numbers, with the same reasons.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inferstack.components.planning.clouds import CLOUDS, Cloud, Target
from inferstack.components.planning.cold_start import for_target, target_reason
from inferstack.components.planning.cost import CostEstimate, estimate_cost
from inferstack.components.planning.model_delivery import image_warnings, with_model_download
from inferstack.components.planning.pools import (
    BatchPool,
    Pool,
    RealtimePool,
    Tier,
    batch_pool,
    pools,
    realtime_pool,
)
from inferstack.components.planning.pricing import PriceTable
from inferstack.components.planning.sizing import Derived, Sizing, size_service
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.errors import Problem, SpecError
from inferstack.profile import Profile

DECLARATION_OUTPUT = "declaration"
"""The output a component registers its plan's `declaration()` under."""


@dataclass(frozen=True)
class ServicePlan:
    """One service, sized for one target: what every component and report reads."""

    spec: InferenceServiceSpec
    profile: Profile
    target: Target
    sizing: Sizing
    """Every derived number of the pools, each with its reason."""
    cost: CostEstimate
    """Naive against configured monthly cost, lever by lever, at `price_cloud`'s prices."""
    price_cloud: Cloud
    """Whose prices the cost uses: the target's cloud, or the spec's `price_cloud` on a plain
    Kubernetes target."""

    @property
    def cloud(self) -> Cloud | None:
        """The target's cloud table, or None on a plain Kubernetes target."""
        return None if self.target == "kubernetes" else CLOUDS[self.target]

    @property
    def realtime(self) -> RealtimePool | None:
        """The realtime pool, or None when the spec has none."""
        return realtime_pool(self.spec, self.sizing)

    @property
    def batch(self) -> BatchPool | None:
        """The batch pool, or None when the spec has none."""
        return batch_pool(self.spec, self.sizing)

    @property
    def pools(self) -> tuple[Pool, ...]:
        """Every pool of the service, realtime first."""
        return pools(self.spec, self.sizing)

    def pool(self, tier: Tier) -> Pool:
        """The pool of `tier`; a `KeyError` when the spec has none (a caller's mistake)."""
        for found in self.pools:
            if found.tier == tier:
                return found
        raise KeyError(f"{self.spec.name} has no {tier} pool")

    def declaration(self) -> dict[str, Any]:
        """What the plan was made from, JSON-ready: the target and the spec as validated.

        Components register it (`DECLARATION_OUTPUT`) so that the offline tools can plan the
        service again from any program that declares one, as the stack program does from config.
        """
        return {
            "target": self.target,
            "spec": self.spec.model_dump(mode="json", exclude_defaults=True),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form: the target, the sizing and the cost."""
        return {
            "target": self.target,
            "price_cloud": self.price_cloud.name,
            "sizing": self.sizing.to_dict(),
            "cost": self.cost.to_dict(),
        }


def target_problems(plan: ServicePlan, target: Target) -> list[Problem]:
    """A plan made for another target, which a component of `target` refuses."""
    if plan.target == target:
        return []
    message = f"the plan was made for {plan.target!r}; plan the service with target {target}"
    return [Problem("inferstack:target", message)]


def _target_problems(spec: InferenceServiceSpec, target: Target) -> list[Problem]:
    """GPUs a cloud target cannot provide: said before anything is sized or created."""
    problems = _spot_share_problems(spec, target)
    if target == "kubernetes":
        return problems
    cloud = CLOUDS[target]
    for path, pool in (("realtime", spec.realtime), ("batch", spec.batch)):
        if pool is None:
            continue
        machines = cloud.machines_for(pool.gpu.type)
        offered = ", ".join(sorted(cloud.machines))
        if machines is None:
            problems.append(
                Problem(
                    f"{path}.gpu.type",
                    f"{pool.gpu.type} is not offered on {cloud.title}; use one of: {offered}",
                )
            )
        elif not machines.fitting(pool.gpu.count):
            largest = max(size.gpus for size in machines.sizes)
            problems.append(
                Problem(
                    f"{path}.gpu.count",
                    f"{pool.gpu.count} x {pool.gpu.type} do not fit one {cloud.title} machine "
                    f"(at most {largest}); lower gpu.count to {largest} or less",
                )
            )
    return problems


def _spot_share_problems(spec: InferenceServiceSpec, target: Target) -> list[Problem]:
    """A split spot share where nothing renders one: only the aws target's Karpenter NodePools
    split a pool between capacity types (0 or 1 work everywhere)."""
    share = spec.batch.capacity.spot_share if spec.batch is not None else None
    if share is None or share in (0, 1) or target == "aws":
        return []
    return [
        Problem(
            "batch.capacity.spot_share",
            f"{share:g} splits the queue pool between spot and on-demand, which only the aws "
            f"target renders (two Karpenter NodePools); on {target} use 0 (on-demand only) or "
            "1 (spot first), or remove it",
        )
    ]


def plan_service(
    spec: InferenceServiceSpec,
    profile: Profile,
    *,
    target: Target = "kubernetes",
    prices: PriceTable | None = None,
    now: datetime | None = None,
) -> ServicePlan:
    """Size `spec` from `profile` for `target` and price it; raise `SpecError` if it cannot work.

    `prices` replaces the shipped list-price table (the spec's own `prices` still override it);
    `now` fixes the clock that pre-warm schedules are computed from.
    """
    problems = _target_problems(spec, target)
    if problems:
        raise SpecError(problems, source=f"spec for target {target}")
    # A fetched model's download, and the target's own start (Cloud Run starts an instance,
    # not a node), join the cold start here, once, for every consumer.
    profile = for_target(with_model_download(spec.model, profile), target)
    sizing = size_service(spec, profile, target=target, now=now)
    cold, reason = sizing.cold_start_seconds, target_reason(profile.cold_start, target)
    sizing = dataclasses.replace(
        sizing,
        warnings=[*sizing.warnings, *image_warnings(spec.image)],
        cold_start_seconds=cold if reason is None else Derived(cold.value, reason),
    )
    price_cloud = CLOUDS[spec.price_cloud] if target == "kubernetes" else CLOUDS[target]
    cost = estimate_cost(spec, profile, sizing, price_cloud.name, table=prices)
    return ServicePlan(
        spec=spec,
        profile=profile,
        target=target,
        sizing=sizing,
        cost=cost,
        price_cloud=price_cloud,
    )


__all__ = ["ServicePlan", "plan_service", "target_problems"]
