"""Cold starts on new and existing nodes; spot interruptions that drain and fall back."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from inferstack.offline.simulate.capacity import Pod, PoolCapacity
from inferstack.offline.simulate.config import ColdStart

COLD = ColdStart(node_provision_s=150, image_pull_s=40, model_load_s=5, warmup_s=2)


def _pool(**changes) -> PoolCapacity:
    base: dict[str, Any] = {
        "cold_start": COLD,
        "pods_per_node": 2,
        "gpus_per_node": 2,
        "spot": False,
        "fallback_on_demand": True,
        "notice_s": 120.0,
        "interruptions_per_node_hour": 0.0,
        "shortage_mean_s": 1800.0,
        "consolidation_s": 600.0,
        "rng": np.random.default_rng(0),
    }
    base.update(changes)
    return PoolCapacity(**base)


def test_a_new_node_costs_the_full_cold_start_a_free_slot_only_load_and_warm_up():
    pool = _pool()
    pool.scale_to(1, 0.0)
    first = pool.pods[0]
    assert first.ready_at == pytest.approx(COLD.new_node_s)
    pool.scale_to(2, 1000.0)
    second = pool.pods[1]
    assert second.node is first.node
    assert second.ready_at == pytest.approx(1000.0 + COLD.pod_s)
    pool.scale_to(3, 1000.0)
    assert pool.usage.nodes_launched == 2


def test_an_empty_node_goes_after_the_consolidation_delay_and_is_billed_until_then():
    pool = _pool(pods_per_node=1, gpus_per_node=1)
    pool.scale_to(1, 0.0)
    pool.scale_to(0, 10.0)
    for t in range(10, 700):
        pool.step(float(t), 1.0)
    assert not pool.nodes
    assert pool.usage.node_gpu_seconds["on_demand"] == pytest.approx(600.0, abs=2)


def test_scale_down_removes_pods_that_are_not_ready_first():
    pool = _pool(pods_per_node=4, gpus_per_node=4)
    pool.scale_to(1, 0.0)
    pool.step(0.0, 1.0)
    pool.pods[0].ready_at = 0.0
    pool.scale_to(2, 5.0)
    removed = pool.scale_to(1, 6.0)
    assert removed[0].ready_at > 6.0


def test_a_spot_interruption_drains_the_pods_and_falls_back_to_on_demand():
    pool = _pool(spot=True, pods_per_node=1, gpus_per_node=1, interruptions_per_node_hour=3600)
    pool.scale_to(2, 0.0)
    for pod in pool.pods:
        pod.ready_at = 0.0
    noticed: list[Pod] = []
    t = 0.0
    while not noticed:
        noticed = pool.step(t, 1.0)
        t += 1.0
    node = noticed[0].node
    assert node is not None
    assert node.capacity == "spot"
    assert noticed[0].draining_since is not None
    assert not noticed[0].ready(t)  # no new work on a node under notice
    assert node.terminate_at == pytest.approx(node.interrupt_at + 120.0)
    # The replacement comes up on on-demand while spot is short; nothing is pending.
    kinds = {pool.capacity_of(p) for p in pool.pods if p.draining_since is None}
    assert "on_demand" in kinds
    assert not pool.pending
    while node in pool.nodes:
        pool.step(t, 1.0)
        t += 1.0
    assert t <= node.interrupt_at + 120.0 + 2
    assert pool.usage.interruptions >= 1


def test_without_fallback_the_replacement_waits_for_spot():
    pool = _pool(
        spot=True,
        fallback_on_demand=False,
        pods_per_node=1,
        gpus_per_node=1,
        interruptions_per_node_hour=3600,
        shortage_mean_s=1e9,
    )
    pool.scale_to(1, 0.0)
    t = 0.0
    while not pool.pending:
        pool.step(t, 1.0)
        t += 1.0
    assert pool.pending
    assert all(n.capacity == "spot" for n in pool.nodes)
    assert math.isinf(pool.pending[0].ready_at)


def test_fallback_pods_move_back_to_spot_once_spot_returns():
    pool = _pool(
        spot=True,
        pods_per_node=1,
        gpus_per_node=1,
        interruptions_per_node_hour=3600,
        shortage_mean_s=60.0,
    )
    pool.scale_to(1, 0.0)
    t = 0.0
    while pool.usage.interruptions == 0:
        pool.step(t, 1.0)
        t += 1.0
    pool.rate = 0.0  # no further interruptions
    for node in pool.nodes:
        if node.terminate_at == math.inf:
            node.interrupt_at = math.inf
    assert any(pool.capacity_of(p) == "on_demand" for p in pool.pods)
    for _ in range(4000):
        pool.step(t, 1.0)
        t += 1.0
    assert pool.spec_replicas == 1
    assert [pool.capacity_of(p) for p in pool.pods] == ["spot"]
    assert pool.usage.node_gpu_seconds["on_demand"] > 0
