"""Capacity: pods on GPU nodes, cold starts, node consolidation, spot interruptions.

- A new pod lands in a free slot of an existing node, or asks for a new node. Ready after the
  profile's cold start: model load + warm-up on a node that has the image; node provisioning +
  image pull first on a new node (later pods on that node reuse the image).
- Scale-down removes pods the way a ReplicaSet ranks them (`controller.ActivePods`): pods not
  yet ready first, then the newest ready ones.
- An empty node is removed after the consolidation delay; nodes are billed from launch to
  removal, by capacity type, so a node kept for a pod that left still costs.
- Spot nodes (batch pool only: the realtime pool requires on-demand) are interrupted as a
  Poisson process per node. The provider's notice (2 min AWS, 30 s GCP) starts a drain: the
  node's pods stop taking work, finish what they hold within the grace period (messages that do
  not finish are released to the queue, never lost), and the node goes at the end of the
  notice. The Deployment recreates the pods at once; for a while (exponential, mean
  `shortage_mean_s`) spot capacity is short, and new nodes come up on-demand when the pool falls
  back, or stay pending when it does not.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast

import numpy as np

from inferstack.offline.simulate.config import ColdStart

CapacityType = Literal["on_demand", "spot"]
_T = TypeVar("_T")


@dataclass(eq=False)
class Node:
    """One GPU machine."""

    id: int
    capacity: CapacityType
    launched: float
    image_at: float
    slots: int
    pods: set[int] = field(default_factory=set)
    empty_since: float | None = None
    interrupt_at: float = math.inf
    terminate_at: float = math.inf


@dataclass(eq=False)
class Pod:
    """One replica."""

    id: int
    created: float
    ready_at: float
    node: Node | None
    draining_since: float | None = None
    replaced_by: Pod | None = None
    """Set while a spot replacement of this on-demand fallback pod starts."""

    def ready(self, now: float) -> bool:
        """Serving: started and not draining."""
        return self.node is not None and self.ready_at <= now and self.draining_since is None


@dataclass
class Usage:
    """Accumulated seconds, by capacity type."""

    node_gpu_seconds: dict[str, float] = field(
        default_factory=lambda: {"on_demand": 0.0, "spot": 0.0}
    )
    pod_seconds: dict[str, float] = field(default_factory=lambda: {"on_demand": 0.0, "spot": 0.0})
    interruptions: int = 0
    nodes_launched: int = 0
    cold_starts: int = 0


class PoolCapacity:
    """The nodes and pods of one pool."""

    def __init__(
        self,
        *,
        cold_start: ColdStart,
        pods_per_node: int,
        gpus_per_node: int,
        spot: bool,
        fallback_on_demand: bool,
        notice_s: float,
        interruptions_per_node_hour: float,
        shortage_mean_s: float,
        consolidation_s: float,
        rng: np.random.Generator,
        spot_share: float = 1.0,
    ) -> None:
        self.cold_start = cold_start
        self.spot_share = spot_share
        """Share of the live pods on spot; the rest (rounded up) are on-demand whatever spot
        does, and are never moved back to spot as a fallback's pods are."""
        self.pods_per_node = max(1, pods_per_node)
        self.gpus_per_node = gpus_per_node
        self.spot = spot
        self.fallback = fallback_on_demand
        self.notice_s = notice_s
        self.rate = interruptions_per_node_hour / 3600.0
        self.shortage_mean_s = shortage_mean_s
        self.consolidation_s = consolidation_s
        self.rng = rng
        self.nodes: list[Node] = []
        self.pods: list[Pod] = []
        self.pending: list[Pod] = []
        self.usage = Usage()
        self.shortage_until = -math.inf
        self._ids = itertools.count()
        self._version = 0
        """Bumped by every change to the nodes and pods: what the caches below are keyed by.

        A month of the fast mode is ~500,000 steps in which the pool mostly does not change;
        recounting the pods and nodes at each one was most of the run's time."""
        self._cached: dict[str, tuple[int, object]] = {}

    def changed(self) -> None:
        """Say that a pod or node changed (for a change made from outside, as `start_warm`)."""
        self._version += 1

    def _memo(self, name: str, compute: Callable[[], _T]) -> _T:
        hit = self._cached.get(name)
        if hit is not None and hit[0] == self._version:
            return cast(_T, hit[1])
        value = compute()
        self._cached[name] = (self._version, value)
        return value

    # Queries --------------------------------------------------------------------------------

    @property
    def spec_replicas(self) -> int:
        """Pods the Deployment wants (placed or pending, not draining)."""
        return self._memo("spec", self._count_spec)

    def _count_spec(self) -> int:
        live = [p for p in self.pods if p.draining_since is None and p.replaced_by is None]
        return len(live) + len(self.pending)

    def serving_starts(self) -> list[float]:
        """When each placed, non-draining pod is (or was) ready, sorted: the ready count at any
        time until the next change is a bisection of this list."""
        return self._memo(
            "starts",
            lambda: sorted(
                pod.ready_at
                for pod in self.pods
                if pod.node is not None and pod.draining_since is None
            ),
        )

    def ready_count(self, now: float) -> int:
        """How many pods serve at `now` (`len(ready_pods(now))`, without building the list)."""
        return bisect.bisect_right(self.serving_starts(), now)

    def on_fallback(self) -> bool:
        """Whether a spot pool has a pod on on-demand capacity or awaiting its spot replacement
        (its steps then move pods once spot is back)."""
        return self.spot and self._memo("fallback", self._on_fallback)

    def next_node_event(self) -> float:
        """The earliest time a node gets a notice, ends or is removed (until a change)."""
        return self._memo("next_event", self._next_node_event)

    def node_gpus(self) -> tuple[int, int]:
        """GPUs of the pool's nodes now: on-demand, spot."""
        node_od, node_spot, _, _ = self._memo("bill", self._billing_rates)
        return node_od, node_spot

    def ready_pods(self, now: float) -> list[Pod]:
        """Pods that serve at `now`."""
        return [pod for pod in self.pods if pod.ready(now)]

    def capacity_of(self, pod: Pod) -> CapacityType:
        """Capacity type of the node a pod runs on."""
        return pod.node.capacity if pod.node is not None else "on_demand"

    # Changes --------------------------------------------------------------------------------

    def scale_to(self, replicas: int, now: float) -> list[Pod]:
        """Create or remove pods to reach `replicas`; returns the removed pods."""
        removed: list[Pod] = []
        while self.spec_replicas < replicas:
            self._create_pod(now)
        while self.spec_replicas > replicas:
            if self.pending:
                self.pending.pop()
                self._version += 1
                continue
            live = [p for p in self.pods if p.draining_since is None and p.replaced_by is None]
            victim = max(live, key=lambda p: (p.ready_at > now, p.created, p.id))
            self._remove_pod(victim, now)
            removed.append(victim)
        return removed

    def _create_pod(self, now: float) -> None:
        self._version += 1
        pod = Pod(next(self._ids), now, math.inf, None)
        if not self._place(pod, now):
            self.pending.append(pod)

    def _wanted_capacity(self, now: float) -> CapacityType | None:
        if not self.spot:
            return "on_demand"
        if now < self.shortage_until:
            return "on_demand" if self.fallback else None
        return "spot"

    def _on_demand_quota(self, live: int) -> int:
        """On-demand pods the spot share asks for among `live` pods (all when not on spot)."""
        if not self.spot:
            return live
        return live - math.floor(self.spot_share * live + 1e-9)

    def _live_on_demand(self) -> tuple[int, int]:
        """Live pods (placed, not draining, not being replaced), and those on on-demand nodes."""
        live = [
            p
            for p in self.pods
            if p.draining_since is None and p.replaced_by is None and p.node is not None
        ]
        return len(live), sum(
            1 for p in live if p.node is not None and p.node.capacity == "on_demand"
        )

    def _place(self, pod: Pod, now: float) -> bool:
        wanted = self._wanted_capacity(now)
        if self.spot and self.spot_share < 1:
            live, on_demand = self._live_on_demand()
            if on_demand < self._on_demand_quota(live + 1):
                wanted = "on_demand"
        if wanted is None:
            return False
        node = next(
            (
                n
                for n in self.nodes
                if len(n.pods) < n.slots and n.terminate_at == math.inf and n.capacity == wanted
            ),
            None,
        )
        if node is None:
            node = self._launch(wanted, now)
        self._version += 1
        node.pods.add(pod.id)
        node.empty_since = None
        pod.node = node
        pod.ready_at = max(now, node.image_at) + self.cold_start.pod_s
        self.pods.append(pod)
        self.usage.cold_starts += 1
        return True

    def _launch(self, capacity: CapacityType, now: float) -> Node:
        ready = now + self.cold_start.node_provision_s
        node = Node(
            next(self._ids),
            capacity,
            now,
            ready + self.cold_start.image_pull_s,
            self.pods_per_node,
        )
        if capacity == "spot" and self.rate > 0:
            node.interrupt_at = now + float(self.rng.exponential(1.0 / self.rate))
        self.nodes.append(node)
        self.usage.nodes_launched += 1
        return node

    def _remove_pod(self, pod: Pod, now: float) -> None:
        self._version += 1
        self.pods.remove(pod)
        if pod.node is not None:
            pod.node.pods.discard(pod.id)
            if not pod.node.pods:
                pod.node.empty_since = now

    def step(self, now: float, dt: float) -> list[Pod]:
        """Advance `dt` seconds from `now`: bill, interrupt, drain, consolidate, place pending.

        Returns the pods whose node got an interruption notice in this step.
        """
        self._bill(dt)
        noticed: list[Pod] = []
        end = now + dt
        if end < self._memo("next_event", self._next_node_event) and not self.pending:
            if (
                self.spot
                and end >= self.shortage_until
                and self._memo("fallback", self._on_fallback)
            ):
                self._back_to_spot(end)
            return noticed
        for node in list(self.nodes):
            if node.interrupt_at < end and node.terminate_at == math.inf:
                noticed += self._interrupt(node, end)
            if node.terminate_at <= end:
                for pod in [p for p in self.pods if p.node is node]:
                    self.pods.remove(pod)
                self.nodes.remove(node)
                self._version += 1
            elif self._consolidated(node, end):
                self.nodes.remove(node)
                self._version += 1
        if self.pending and self._wanted_capacity(end) is not None:
            waiting, self.pending = self.pending, []
            for pod in waiting:
                if not self._place(pod, end):
                    self.pending.append(pod)
        if self.spot and end >= self.shortage_until and self._memo("fallback", self._on_fallback):
            self._back_to_spot(end)
        return noticed

    def _next_node_event(self) -> float:
        """The earliest time `step` has something to do to a node: a notice, an end, a removal."""
        soonest = math.inf
        for node in self.nodes:
            if node.terminate_at == math.inf:
                soonest = min(soonest, node.interrupt_at)
            soonest = min(soonest, node.terminate_at)
            if not node.pods and node.empty_since is not None:
                soonest = min(soonest, node.empty_since + self.consolidation_s)
        return soonest

    def _on_fallback(self) -> bool:
        """Whether a pod runs on an on-demand node beyond the spot share's quota, or waits for
        its spot replacement."""
        if any(p.replaced_by is not None for p in self.pods if p.draining_since is None):
            return True
        live, on_demand = self._live_on_demand()
        return on_demand > self._on_demand_quota(live)

    def _billing_rates(self) -> tuple[int, int, int, int]:
        node_gpus = {"on_demand": 0, "spot": 0}
        pods = {"on_demand": 0, "spot": 0}
        for node in self.nodes:
            node_gpus[node.capacity] += self.gpus_per_node
        for pod in self.pods:
            pods[self.capacity_of(pod)] += 1
        return node_gpus["on_demand"], node_gpus["spot"], pods["on_demand"], pods["spot"]

    def _bill(self, dt: float) -> None:
        node_od, node_spot, pods_od, pods_spot = self._memo("bill", self._billing_rates)
        usage = self.usage
        # Added only when non-zero, as the loop over nodes and pods did: the sums stay identical.
        if node_od:
            usage.node_gpu_seconds["on_demand"] += node_od * dt
        if node_spot:
            usage.node_gpu_seconds["spot"] += node_spot * dt
        if pods_od:
            usage.pod_seconds["on_demand"] += pods_od * dt
        if pods_spot:
            usage.pod_seconds["spot"] += pods_spot * dt

    def _interrupt(self, node: Node, end: float) -> list[Pod]:
        """The notice: the node's pods drain, spot runs short for a while, replacements start."""
        self.usage.interruptions += 1
        node.terminate_at = node.interrupt_at + self.notice_s
        self.shortage_until = max(
            self.shortage_until,
            node.interrupt_at + float(self.rng.exponential(self.shortage_mean_s)),
        )
        self._version += 1
        noticed = []
        for pod in self.pods:
            if pod.node is node and pod.draining_since is None:
                pod.draining_since = node.interrupt_at
                noticed.append(pod)
        # The Deployment replaces the drained pods right away.
        for _ in noticed:
            self._create_pod(end)
        return noticed

    def _consolidated(self, node: Node, end: float) -> bool:
        """Empty for the consolidation delay: the autoscaler removes it."""
        return (
            not node.pods
            and node.empty_since is not None
            and end - node.empty_since >= self.consolidation_s
        )

    def _back_to_spot(self, now: float) -> None:
        """Once spot is back, replace on-demand fallback pods with spot ones, start then stop.

        What Karpenter's consolidation does when a cheaper (spot) node can take the pods of an
        on-demand one: the replacement starts (a cold start), then the old pod goes.
        """
        live, on_demand = self._live_on_demand()
        surplus = on_demand - self._on_demand_quota(live)
        for pod in list(self.pods):
            if pod.draining_since is not None or pod.node is None:
                continue
            if pod.replaced_by is None and pod.node.capacity == "on_demand" and surplus > 0:
                surplus -= 1
                replacement = Pod(next(self._ids), now, math.inf, None)
                if self._place(replacement, now):
                    pod.replaced_by = replacement
                    self._version += 1
            elif pod.replaced_by is not None and pod.replaced_by.ready_at <= now:
                self._remove_pod(pod, now)
