"""Each rule on hand-built wire-form resources: a compliant builder, and one changed field per case.

These call the rule functions directly (fast, precise about which field trips which rule); the
same rules also run through the real pack process in test_fixture_programs.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from inferstack.policies.resources import UNKNOWN, Resource
from inferstack.policies.rules import (
    async_spot_durability,
    bounded_gpu_capacity,
    bucket_public_access_prevention,
    cold_start_within_hold_timeout,
    demand_signal_autoscaling,
    gpu_capacity_follows_demand,
    image_pinned_by_digest,
    inference_security,
    no_spot_for_realtime,
    private_results_bucket,
    pubsub_dead_letter_bindings,
    queue_delay_within_budget,
    scale_to_zero_needs_wake_path,
    scoped_inference_identities,
    spot_interruption_handling,
)
from tests.policies import builders as b

NO_CONFIG: dict[str, Any] = {}


def spot_messages(resource: Resource, config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return no_spot_for_realtime.check(resource, config)


# ---------------------------------------------------------------------------------------------
# 1. no-spot-for-realtime


def test_realtime_on_demand_deployment_complies() -> None:
    assert spot_messages(b.deployment()) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "spec.template.spec.nodeSelector",
            {"karpenter.sh/capacity-type": "spot"},
            "nodeSelector karpenter.sh/capacity-type=spot",
        ),
        (
            "spec.template.spec.nodeSelector",
            {"eks.amazonaws.com/capacityType": "SPOT"},
            "nodeSelector eks.amazonaws.com/capacityType=SPOT",
        ),
        (
            "spec.template.spec.nodeSelector",
            {"cloud.google.com/gke-spot": "true"},
            "nodeSelector cloud.google.com/gke-spot=true",
        ),
        (
            "spec.template.spec.affinity",
            {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "karpenter.sh/capacity-type",
                                        "operator": "In",
                                        "values": ["spot", "on-demand"],
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
            "required node affinity on karpenter.sh/capacity-type",
        ),
        (
            "spec.template.spec.affinity",
            {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50.0,
                            "preference": {
                                "matchExpressions": [
                                    {
                                        "key": "cloud.google.com/gke-preemptible",
                                        "operator": "Exists",
                                    }
                                ]
                            },
                        }
                    ]
                }
            },
            "preferred node affinity on cloud.google.com/gke-preemptible",
        ),
    ],
)
def test_realtime_deployment_selecting_spot_is_flagged(
    path: str, value: Any, expected: str
) -> None:
    props = b.mutated(b.deployment_props(), path, value)
    [message] = spot_messages(b.resource("kubernetes:apps/v1:Deployment", "llm", props))
    assert expected in message
    assert "on-demand" in message


def test_spot_toleration_admits_spot_unless_pinned_to_on_demand() -> None:
    toleration = [{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true"}]
    pinned = b.mutated(b.deployment_props(), "spec.template.spec.tolerations", toleration)
    assert spot_messages(b.resource("kubernetes:apps/v1:Deployment", "llm", pinned)) == []

    unpinned = b.mutated(pinned, "spec.template.spec.nodeSelector", None)
    [message] = spot_messages(b.resource("kubernetes:apps/v1:Deployment", "llm", unpinned))
    assert "toleration for the spot taint cloud.google.com/gke-spot" in message


def test_wildcard_toleration_admits_spot() -> None:
    props = b.mutated(b.deployment_props(), "spec.template.spec.nodeSelector", None)
    props = b.mutated(props, "spec.template.spec.tolerations", [{"operator": "Exists"}])
    [message] = spot_messages(b.resource("kubernetes:apps/v1:Deployment", "llm", props))
    assert "tolerates every taint" in message


def test_batch_tier_may_use_spot() -> None:
    props = b.mutated(
        b.deployment_props(tier="batch"),
        "spec.template.spec.nodeSelector",
        {"karpenter.sh/capacity-type": "spot"},
    )
    assert spot_messages(b.resource("kubernetes:apps/v1:Deployment", "w", props)) == []


def test_tier_label_key_and_value_are_configurable() -> None:
    props = b.mutated(
        b.deployment_props(),
        "spec.template.spec.nodeSelector",
        {"karpenter.sh/capacity-type": "spot"},
    )
    props = b.mutated(props, "spec.template.metadata.labels", {"example.com/latency": "sync"})
    props = b.mutated(props, "metadata.labels", {})
    deployment = b.resource("kubernetes:apps/v1:Deployment", "llm", props)
    assert spot_messages(deployment) == []
    config = {"tierLabel": "example.com/latency", "realtimeTier": "sync"}
    [message] = spot_messages(deployment, config)
    assert "example.com/latency=sync" in message


def test_eks_node_group_capacity_type() -> None:
    group = b.eks_node_group_props()
    assert spot_messages(b.resource("aws:eks/nodeGroup:NodeGroup", "g", group)) == []
    spot = b.mutated(group, "capacityType", "SPOT")
    [message] = spot_messages(b.resource("aws:eks/nodeGroup:NodeGroup", "g", spot))
    assert "capacityType SPOT" in message


@pytest.mark.parametrize("flag", ["spot", "preemptible"])
def test_gke_node_pool_spot_or_preemptible(flag: str) -> None:
    pool = b.gke_node_pool_props()
    assert spot_messages(b.resource("gcp:container/nodePool:NodePool", "p", pool)) == []
    spot = b.mutated(pool, f"nodeConfig.{flag}", True)
    [message] = spot_messages(b.resource("gcp:container/nodePool:NodePool", "p", spot))
    assert f"nodeConfig.{flag}" in message


def test_realtime_compute_class_admitting_spot() -> None:
    klass = b.compute_class_props()
    assert spot_messages(b.resource(b.COMPUTE_CLASS, "c", klass)) == []
    spot = b.mutated(klass, "spec.priorities.0.spot", True)
    [message] = spot_messages(b.resource(b.COMPUTE_CLASS, "c", spot))
    assert "admits Spot VMs (spec.priorities[0].spot)" in message
    batch = b.mutated(spot, "metadata.labels", b.tier_labels(tier="batch"))
    assert spot_messages(b.resource(b.COMPUTE_CLASS, "c", batch)) == []


def test_karpenter_node_pool_allowing_spot() -> None:
    props = {
        "spec": {
            "template": {
                "metadata": {"labels": b.tier_labels()},
                "spec": {
                    "requirements": [
                        {
                            "key": "karpenter.sh/capacity-type",
                            "operator": "In",
                            "values": ["on-demand"],
                        }
                    ]
                },
            }
        }
    }
    pool_type = "kubernetes:karpenter.sh/v1:NodePool"
    assert spot_messages(b.resource(pool_type, "p", props)) == []
    spot = b.mutated(props, "spec.template.spec.requirements.0.values", ["spot", "on-demand"])
    assert len(spot_messages(b.resource(pool_type, "p", spot))) == 1
    not_on_demand = b.mutated(props, "spec.template.spec.requirements.0.operator", "NotIn")
    assert len(spot_messages(b.resource(pool_type, "p", not_on_demand))) == 1


# ---------------------------------------------------------------------------------------------
# 2. scale-to-zero-needs-wake-path


def zero_findings(resources: list[Resource]) -> list[str]:
    return [f.urn for f in scale_to_zero_needs_wake_path.check(resources, NO_CONFIG)]


def test_min_one_replica_complies() -> None:
    assert zero_findings([b.deployment(), b.scaled_object()]) == []


@pytest.mark.parametrize("minimum", [0.0, None], ids=["explicit-zero", "keda-default"])
def test_zero_with_only_pod_metrics_is_flagged(minimum: float | None) -> None:
    props = b.mutated(b.scaled_object_props(), "spec.minReplicaCount", minimum)
    scaler = b.scaled_object(props)
    assert zero_findings([b.deployment(), scaler]) == [scaler.urn]


def _at_zero(*triggers: dict[str, Any]) -> Resource:
    props = b.mutated(b.scaled_object_props(), "spec.minReplicaCount", 0.0)
    return b.scaled_object(b.mutated(props, "spec.triggers", list(triggers)))


def test_an_http_scaled_object_beside_a_scaled_object_is_flagged() -> None:
    """The HTTPScaledObject makes its own ScaledObject for the same Deployment, which KEDA's
    webhook rejects ("already managed by the ScaledObject"), at any minimum."""
    for scaler in (_at_zero(b.queue_depth_trigger()), b.scaled_object()):
        [finding] = scale_to_zero_needs_wake_path.check(
            [b.deployment(), scaler, b.http_scaled_object()], NO_CONFIG
        )
        assert finding.urn == scaler.urn
        assert "skip-scaledobject-creation" in finding.message


def test_a_skipping_http_scaled_object_wakes_only_through_its_trigger() -> None:
    http = b.skipping_http_scaled_object()
    unused = _at_zero(b.queue_depth_trigger())
    assert zero_findings([b.deployment(), unused, http]) == [unused.urn]
    used = _at_zero(b.queue_depth_trigger(), b.external_push_trigger(httpScaledObject="llm"))
    assert zero_findings([b.deployment(), used, http]) == []
    # Named, but without the annotation the add-on still makes its own ScaledObject.
    assert zero_findings([b.deployment(), used, b.http_scaled_object()]) == [used.urn]


def test_a_cron_trigger_is_no_wake_path() -> None:
    cron = {
        "type": "cron",
        "metadata": {"timezone": "UTC", "start": "0 9 * * *", "end": "0 17 * * *"},
    }
    scaler = _at_zero(b.queue_depth_trigger(), cron)
    [finding] = scale_to_zero_needs_wake_path.check([b.deployment(), scaler], NO_CONFIG)
    assert "cron" in finding.message


def test_zero_with_a_queue_trigger_complies() -> None:
    props = b.mutated(b.scaled_object_props(), "spec.minReplicaCount", 0.0)
    queue = {"type": "aws-sqs-queue", "metadata": {"queueURL": "https://sqs/q", "queueLength": "5"}}
    props = b.mutated(props, "spec.triggers", [b.queue_depth_trigger(), queue])
    assert zero_findings([b.deployment(), b.scaled_object(props)]) == []


def test_autonamed_target_is_found_through_dependencies() -> None:
    deployment = b.deployment()
    props = b.mutated(b.scaled_object_props(target=UNKNOWN), "spec.minReplicaCount", 0.0)
    props = b.mutated(props, "metadata.labels", {})  # realtime only through the workload
    scaler = b.scaled_object(props, property_dependencies={"spec": (deployment.urn,)})
    assert zero_findings([deployment, scaler]) == [scaler.urn]


def test_an_interceptor_route_wakes_only_the_scaled_object_whose_trigger_names_it() -> None:
    """kedacore/http-add-on `scaler/handlers.go` reads an InterceptorRoute only when the
    external-push trigger's `interceptorRoute` names it."""
    service = b.resource(
        "kubernetes:core/v1:Service",
        "llm",
        {"metadata": {"name": "llm"}, "spec": {"selector": b.tier_labels()}},
    )
    route = b.interceptor_route()
    unused = _at_zero(b.queue_depth_trigger())
    assert zero_findings([b.deployment(), unused, service, route]) == [unused.urn]
    used = _at_zero(b.queue_depth_trigger(), b.external_push_trigger(interceptorRoute="llm"))
    assert zero_findings([b.deployment(), used, service, route]) == []
    # Names a route that is not there.
    assert zero_findings([b.deployment(), used, service]) == [used.urn]


# ---------------------------------------------------------------------------------------------
# 3. demand-signal-autoscaling


def demand_findings(resources: list[Resource]) -> list[str]:
    return [f.urn for f in demand_signal_autoscaling.check(resources, NO_CONFIG)]


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "cpu", "metadata": {"value": "60"}},
        {"type": "memory", "metadata": {"value": "80"}},
        {"type": "prometheus", "metadata": {"query": "avg(DCGM_FI_DEV_GPU_UTIL)"}},
        {"type": "prometheus", "metadata": {"query": "max(nvidia_gpu_utilization{pod=~'x'})"}},
    ],
)
def test_utilisation_only_triggers_are_flagged(trigger: dict[str, Any]) -> None:
    scaler = b.scaled_object(b.mutated(b.scaled_object_props(), "spec.triggers", [trigger]))
    assert demand_findings([b.deployment(), scaler]) == [scaler.urn]


def test_utilisation_alongside_demand_complies() -> None:
    triggers = [{"type": "cpu", "metadata": {"value": "60"}}, b.queue_depth_trigger()]
    scaler = b.scaled_object(b.mutated(b.scaled_object_props(), "spec.triggers", triggers))
    assert demand_findings([b.deployment(), scaler]) == []


def test_non_inference_workload_may_scale_on_cpu() -> None:
    web = b.deployment_props("web")
    web["metadata"]["labels"] = {}
    web["spec"]["template"]["metadata"]["labels"] = {"app": "web"}
    web["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    props = b.mutated(b.scaled_object_props("web"), "metadata.labels", {})
    props = b.mutated(props, "spec.triggers", [{"type": "cpu", "metadata": {"value": "60"}}])
    workload = b.resource("kubernetes:apps/v1:Deployment", "web", web)
    assert demand_findings([workload, b.scaled_object(props)]) == []


def test_hpa_on_cpu_for_gpu_workload_is_flagged() -> None:
    hpa = b.resource(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "llm",
        {
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "llm"},
                "maxReplicas": 4.0,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu"}}],
            }
        },
    )
    assert demand_findings([b.deployment(), hpa]) == [hpa.urn]


# ---------------------------------------------------------------------------------------------
# 4. bounded-gpu-capacity


def bounded_messages(resources: list[Resource], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return [f.message for f in bounded_gpu_capacity.check(resources, config)]


def test_bounded_gpu_capacity_complies() -> None:
    group = b.resource("aws:eks/nodeGroup:NodeGroup", "g", b.eks_node_group_props())
    pool = b.resource("gcp:container/nodePool:NodePool", "p", b.gke_node_pool_props())
    assert bounded_messages([group, pool, b.deployment(), b.scaled_object()]) == []


def test_node_group_above_ceiling() -> None:
    props = b.mutated(b.eks_node_group_props(), "scalingConfig.maxSize", 100.0)
    group = b.resource("aws:eks/nodeGroup:NodeGroup", "g", props)
    [message] = bounded_messages([group])
    assert "100 nodes" in message
    assert bounded_messages([group], {"maxGpuNodes": 128.0}) == []


def test_cpu_node_group_is_not_judged() -> None:
    props = b.mutated(b.eks_node_group_props(), "instanceTypes", ["m7i.xlarge"])
    props = b.mutated(props, "scalingConfig.maxSize", 500.0)
    assert bounded_messages([b.resource("aws:eks/nodeGroup:NodeGroup", "g", props)]) == []


def test_gke_pool_without_max_node_count() -> None:
    props = b.mutated(b.gke_node_pool_props(), "autoscaling.maxNodeCount", None)
    [message] = bounded_messages([b.resource("gcp:container/nodePool:NodePool", "p", props)])
    assert "no autoscaling.maxNodeCount" in message


def test_gke_per_zone_max_multiplies_by_zones() -> None:
    props = b.mutated(b.gke_node_pool_props(), "autoscaling.maxNodeCount", 30.0)
    props = b.mutated(props, "nodeLocations", ["us-central1-a", "us-central1-b", "us-central1-c"])
    [message] = bounded_messages([b.resource("gcp:container/nodePool:NodePool", "p", props)])
    assert "90 nodes" in message


def test_scaled_object_without_max_gets_keda_default() -> None:
    scaler = b.scaled_object(b.mutated(b.scaled_object_props(), "spec.maxReplicaCount", None))
    [message] = bounded_messages([b.deployment(), scaler])
    assert "default of 100" in message


def test_http_scaled_object_above_ceiling() -> None:
    http = b.http_scaled_object(b.mutated(b.http_scaled_object_props(), "spec.replicas.max", 200.0))
    [message] = bounded_messages([b.deployment(), http])
    assert "200 GPU replicas (spec.replicas.max)" in message


# ---------------------------------------------------------------------------------------------
# 5. queue-delay-within-budget


def delay_messages(props: dict[str, Any], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    resource = b.resource("kubernetes:apps/v1:Deployment", "llm", props)
    return queue_delay_within_budget.check(resource, config)


def budgeted(delay: str) -> dict[str, Any]:
    props = b.mutated(
        b.deployment_props(), "metadata.annotations", {"inferstack.io/latency-budget-ms": "150"}
    )
    env = [{"name": "INFERSTACK_MAX_QUEUE_DELAY_MS", "value": delay}]
    return b.mutated(props, "spec.template.spec.containers.0.env", env)


def test_small_delay_complies() -> None:
    assert delay_messages(budgeted("8")) == []


def test_delay_above_share_is_flagged() -> None:
    [message] = delay_messages(budgeted("40"))
    assert "40 ms" in message
    assert "30 ms" in message
    assert delay_messages(budgeted("40"), {"maxQueueDelayShare": 0.5}) == []


def test_delay_annotation_is_read_too() -> None:
    props = b.mutated(
        b.deployment_props(),
        "metadata.annotations",
        {"inferstack.io/latency-budget-ms": "100", "inferstack.io/max-queue-delay-ms": "50"},
    )
    [message] = delay_messages(props)
    assert "annotation inferstack.io/max-queue-delay-ms" in message


def test_malformed_budget_names_the_annotation() -> None:
    props = b.mutated(
        budgeted("8"), "metadata.annotations", {"inferstack.io/latency-budget-ms": "fast"}
    )
    [message] = delay_messages(props)
    assert "inferstack.io/latency-budget-ms is not a positive number" in message


def test_unknown_delay_is_not_judged() -> None:
    assert delay_messages(budgeted(UNKNOWN)) == []  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# 6. async-spot-durability


def durability_messages(resources: list[Resource], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return [f.message for f in async_spot_durability.check(resources, config)]


def queues(redrive: Any = UNKNOWN, visibility: float = 900.0) -> list[Resource]:
    dlq = b.resource("aws:sqs/queue:Queue", "dlq", {})
    props: dict[str, Any] = {"visibilityTimeoutSeconds": visibility, "tags": {}}
    deps: dict[str, tuple[str, ...]] = {}
    if redrive is not None:
        props["redrivePolicy"] = redrive
        deps = {"redrivePolicy": (dlq.urn,)}
    work = b.resource("aws:sqs/queue:Queue", "work", props, property_dependencies=deps)
    return [dlq, work]


def test_queue_with_redrive_complies() -> None:
    assert durability_messages(queues()) == []


def test_queue_without_redrive_is_flagged() -> None:
    messages = durability_messages(queues(redrive=None))
    assert len(messages) == 2  # the work queue, and the would-be DLQ that nothing targets now
    assert all("no redrivePolicy" in m for m in messages)


def test_known_redrive_without_target_is_flagged() -> None:
    [message] = durability_messages(queues(redrive='{"maxReceiveCount": 5}'))
    assert "deadLetterTargetArn" in message


def test_visibility_below_max_job_time() -> None:
    resources = queues(visibility=300.0)
    assert durability_messages(resources) == []  # no max job time declared anywhere
    [message] = durability_messages(resources, {"maxJobSeconds": 600.0})
    assert "visibility timeout (300 s)" in message
    worker = b.deployment(
        "worker", tier="batch", property_dependencies={"spec": (resources[1].urn,)}
    )
    worker.props["metadata"]["annotations"]["inferstack.io/max-job-seconds"] = "900"
    [message] = durability_messages([*resources, worker])
    assert "max job time (900 s)" in message


def test_pubsub_subscription_needs_dead_letter_policy() -> None:
    subscription = {"topic": UNKNOWN, "ackDeadlineSeconds": 600.0}
    bare = b.resource("gcp:pubsub/subscription:Subscription", "s", subscription)
    [message] = durability_messages([bare])
    assert "deadLetterPolicy" in message
    with_dlq = b.resource(
        "gcp:pubsub/subscription:Subscription",
        "s",
        {**subscription, "deadLetterPolicy": {"deadLetterTopic": UNKNOWN}},
    )
    assert durability_messages([with_dlq]) == []


@pytest.mark.parametrize(
    ("selector", "grace", "flagged"),
    [
        ({"karpenter.sh/capacity-type": "spot"}, 110.0, False),
        ({"karpenter.sh/capacity-type": "spot"}, 150.0, True),
        ({"cloud.google.com/gke-spot": "true"}, 45.0, True),
        # GKE gives non-system pods 15 s of the 30 s notice (GKE docs, "Spot VMs").
        ({"cloud.google.com/gke-spot": "true"}, 25.0, True),
        ({"cloud.google.com/gke-spot": "true"}, 15.0, False),
        ({"karpenter.sh/capacity-type": "on-demand"}, 600.0, False),
    ],
)
def test_spot_worker_grace_period(selector: dict[str, str], grace: float, flagged: bool) -> None:
    props = b.mutated(
        b.deployment_props("worker", "batch"), "spec.template.spec.nodeSelector", selector
    )
    props = b.mutated(props, "spec.template.spec.terminationGracePeriodSeconds", grace)
    worker = b.resource("kubernetes:apps/v1:Deployment", "worker", props)
    messages = durability_messages([worker])
    assert bool(messages) is flagged
    if flagged:
        assert "terminationGracePeriodSeconds" in messages[0]


def test_gke_pods_get_their_share_of_the_notice_unless_the_pool_extends_it() -> None:
    props = b.mutated(
        b.deployment_props("worker", "batch"),
        "spec.template.spec.nodeSelector",
        {"cloud.google.com/gke-spot": "true"},
    )
    props = b.mutated(props, "spec.template.spec.terminationGracePeriodSeconds", 25.0)
    worker = b.resource("kubernetes:apps/v1:Deployment", "worker", props)
    [message] = durability_messages([worker])
    assert "GKE gives non-system pods (15 s)" in message
    extended = {"gkeNonSystemPodShutdownSeconds": 60, "gcpInterruptionNoticeSeconds": 75}
    assert [f.message for f in async_spot_durability.check([worker], extended)] == []


# ---------------------------------------------------------------------------------------------
# 7. cold-start-within-hold-timeout


def cold_messages(resources: list[Resource], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return [f.message for f in cold_start_within_hold_timeout.check(resources, config)]


def cold_deployment(seconds: str = "90") -> Resource:
    deployment = b.deployment()
    deployment.props["metadata"]["annotations"]["inferstack.io/cold-start-seconds"] = seconds
    return deployment


def test_hold_above_cold_start_complies() -> None:
    assert cold_messages([cold_deployment(), b.http_scaled_object()]) == []


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.timeouts.conditionWait", "45s", "45 s (spec.timeouts.conditionWait)"),
        ("spec.timeouts", None, "20 s (the interceptor's KEDA_CONDITION_WAIT_TIMEOUT)"),
        (
            "spec.coldStartTimeoutFailoverRef",
            {"service": "fallback", "port": 80.0},
            "30 s (spec.coldStartTimeoutFailoverRef.timeoutSeconds)",
        ),
    ],
)
def test_hold_shorter_than_cold_start(path: str, value: Any, expected: str) -> None:
    http = b.http_scaled_object(b.mutated(b.http_scaled_object_props(), path, value))
    [message] = cold_messages([cold_deployment(), http])
    assert expected in message
    assert "cold start is 90 s" in message


def test_warm_replica_needs_no_hold() -> None:
    props = b.mutated(b.http_scaled_object_props(), "spec.replicas.min", 1.0)
    props = b.mutated(props, "spec.timeouts.conditionWait", "5s")
    assert cold_messages([cold_deployment(), b.http_scaled_object(props)]) == []


def test_interceptor_route_readiness_timeout() -> None:
    service = b.resource(
        "kubernetes:core/v1:Service",
        "llm",
        {"metadata": {"name": "llm"}, "spec": {"selector": b.tier_labels()}},
    )
    route_props = {
        "metadata": {"name": "llm"},
        "spec": {"target": {"service": "llm", "port": 8080.0}, "timeouts": {"readiness": "1m"}},
    }
    route_type = "kubernetes:http.keda.sh/v1beta1:InterceptorRoute"
    route = b.resource(route_type, "r", route_props)
    [message] = cold_messages([cold_deployment("120"), service, route])
    assert "60 s (spec.timeouts.readiness)" in message
    unbounded = b.resource(route_type, "r", b.mutated(route_props, "spec.timeouts", None))
    assert cold_messages([cold_deployment("120"), service, unbounded]) == []


# ---------------------------------------------------------------------------------------------
# 8. inference-security


def security_messages(resource: Resource) -> list[str]:
    return inference_security.check(resource, NO_CONFIG)


def lb_props() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "llm",
            "labels": b.tier_labels(),
            "annotations": {"networking.gke.io/load-balancer-type": "Internal"},
        },
        "spec": {"type": "LoadBalancer", "selector": b.tier_labels()},
    }


def test_compliant_workload_and_internal_lb() -> None:
    assert security_messages(b.deployment()) == []
    assert security_messages(b.resource("kubernetes:core/v1:Service", "llm", lb_props())) == []


@pytest.mark.parametrize(
    ("ranges", "flagged"),
    [(None, True), (["10.0.0.0/8"], False), (["0.0.0.0/0"], True)],
)
def test_public_load_balancer(ranges: list[str] | None, flagged: bool) -> None:
    props = b.mutated(lb_props(), "metadata.annotations", {})
    props = b.mutated(props, "spec.loadBalancerSourceRanges", ranges)
    messages = security_messages(b.resource("kubernetes:core/v1:Service", "llm", props))
    assert bool(messages) is flagged


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec.template.spec.containers.0.securityContext", {"privileged": True}, "privileged"),
        ("spec.template.spec.containers.0.securityContext", {"runAsUser": 0.0}, "runAsUser 0"),
        ("spec.template.spec.securityContext", {}, "may run as root"),
        (
            "spec.template.spec.containers.0.resources",
            {"requests": {"nvidia.com/gpu": "1"}},
            "requests nvidia.com/gpu without a limit",
        ),
        (
            "spec.template.spec.containers.0.resources",
            {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}},
            "requests nvidia.com/gpu 1 but limits it to 2",
        ),
    ],
)
def test_workload_security(path: str, value: Any, expected: str) -> None:
    props = b.mutated(b.deployment_props(), path, value)
    [message] = security_messages(b.resource("kubernetes:apps/v1:Deployment", "llm", props))
    assert expected in message


def test_worker_admitting_several_clouds_gets_the_shortest_notice() -> None:
    preferences = [
        {
            "weight": 100.0,
            "preference": {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]},
        }
        for key, value in (
            ("karpenter.sh/capacity-type", "spot"),
            ("cloud.google.com/gke-spot", "true"),
        )
    ]
    props = b.mutated(
        b.deployment_props("worker", "batch"), "spec.template.spec.nodeSelector", None
    )
    props = b.mutated(
        props,
        "spec.template.spec.affinity",
        {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": preferences}},
    )
    props = b.mutated(props, "spec.template.spec.terminationGracePeriodSeconds", 60.0)
    [message] = durability_messages([b.resource("kubernetes:apps/v1:Deployment", "worker", props)])
    assert "part of the GCP notice GKE gives non-system pods (15 s)" in message


def test_karpenter_gpu_pool_needs_a_gpu_limit() -> None:
    props: dict[str, Any] = {
        "spec": {
            "template": {
                "spec": {
                    "requirements": [
                        {
                            "key": "karpenter.k8s.aws/instance-family",
                            "operator": "In",
                            "values": ["g6", "g6e"],
                        }
                    ]
                }
            },
            "limits": {"nvidia.com/gpu": "16"},
        }
    }
    pool_type = "kubernetes:karpenter.sh/v1:NodePool"
    assert bounded_messages([b.resource(pool_type, "gpu", props)]) == []
    [message] = bounded_messages(
        [b.resource(pool_type, "gpu", b.mutated(props, "spec.limits", None))]
    )
    assert 'spec.limits["nvidia.com/gpu"]' in message
    cpu_pool = b.mutated(props, "spec.template.spec.requirements.0.values", ["m7i"])
    assert (
        bounded_messages([b.resource(pool_type, "cpu", b.mutated(cpu_pool, "spec.limits", None))])
        == []
    )


def test_idle_replica_count_zero_also_reaches_zero() -> None:
    scaler = b.scaled_object(b.mutated(b.scaled_object_props(), "spec.idleReplicaCount", 0.0))
    [finding] = scale_to_zero_needs_wake_path.check([b.deployment(), scaler], NO_CONFIG)
    assert "idleReplicaCount 0" in finding.message


# ---------------------------------------------------------------------------------------------
# 9. pubsub-dead-letter-bindings


def binding_findings(resources: list[Resource]) -> list[str]:
    return [f.message for f in pubsub_dead_letter_bindings.check(resources, NO_CONFIG)]


def test_dead_letter_policy_with_both_agent_bindings_complies() -> None:
    assert binding_findings(b.pubsub_dead_letter_case()) == []


@pytest.mark.parametrize(
    ("dropped", "missing"),
    [
        ("agent-publisher", "roles/pubsub.publisher on the dead-letter topic"),
        ("agent-subscriber", "roles/pubsub.subscriber on this subscription"),
    ],
)
def test_a_missing_agent_binding_is_flagged(dropped: str, missing: str) -> None:
    resources = [r for r in b.pubsub_dead_letter_case() if r.name != dropped]
    [message] = binding_findings(resources)
    assert missing in message
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in message


def test_a_binding_for_someone_else_or_on_another_topic_does_not_count() -> None:
    resources = b.pubsub_dead_letter_case()
    other_member = [
        b.resource(
            r.type,
            r.name,
            {**r.props, "member": "serviceAccount:w@p.iam.gserviceaccount.com"},
            property_dependencies=r.property_dependencies,
        )
        if r.name == "agent-publisher"
        else r
        for r in resources
    ]
    assert len(binding_findings(other_member)) == 1
    other_topic = [
        b.resource(r.type, r.name, {**r.props, "topic": "jobs"}, property_dependencies={})
        if r.name == "agent-publisher"
        else r
        for r in resources
    ]
    assert len(binding_findings(other_topic)) == 1


def test_project_wide_grants_and_names_instead_of_dependencies_count() -> None:
    subscription, *_ = b.pubsub_dead_letter_case()
    named = b.resource(
        subscription.type,
        subscription.name,
        {**subscription.props, "deadLetterPolicy": {"deadLetterTopic": "projects/p/topics/dlq"}},
    )
    project_grants = [
        b.resource(
            "gcp:projects/iAMMember:IAMMember",
            f"agent-{role}",
            {"project": "p", "role": f"roles/pubsub.{role}", "member": b.PUBSUB_AGENT},
        )
        for role in ("publisher", "subscriber")
    ]
    assert binding_findings([named, *project_grants]) == []
    by_name = b.resource(
        "gcp:pubsub/topicIAMMember:TopicIAMMember",
        "by-name",
        {"topic": "dlq", "role": "roles/pubsub.publisher", "member": b.PUBSUB_AGENT},
    )
    assert binding_findings([named, by_name, project_grants[1]]) == []


def test_subscription_without_dead_letter_policy_is_not_this_rules_finding() -> None:
    subscription = b.resource("gcp:pubsub/subscription:Subscription", "s", {"topic": "jobs"})
    assert binding_findings([subscription]) == []


# ---------------------------------------------------------------------------------------------
# 10. bucket-public-access-prevention


@pytest.mark.parametrize(
    ("value", "flagged"),
    [("enforced", False), (UNKNOWN, False), ("inherited", True), (None, True)],
)
def test_bucket_public_access_prevention(value: Any, flagged: bool) -> None:
    props = b.mutated(b.bucket_props(), "publicAccessPrevention", value)
    messages = bucket_public_access_prevention.check(
        b.resource("gcp:storage/bucket:Bucket", "results", props), NO_CONFIG
    )
    assert bool(messages) is flagged
    if flagged:
        assert 'set publicAccessPrevention to "enforced"' in messages[0]


# 9. spot-interruption-handling


def interruption_findings(resources: list[Resource], config: dict[str, Any] = NO_CONFIG):
    return [f.urn for f in spot_interruption_handling.check(resources, config)]


def _spot_pool(capacity: list[str] | None = None) -> Resource:
    props = b.karpenter_pool_props(capacity or ["spot", "on-demand"])
    return b.resource(b.KARPENTER_NODE_POOL, "llm-batch", props)


def test_spot_pool_with_an_interruption_queue_complies() -> None:
    assert interruption_findings([_spot_pool(), *b.interruption_resources()]) == []


def test_spot_pool_without_an_interruption_queue_is_flagged() -> None:
    pool = _spot_pool()
    assert interruption_findings([pool]) == [pool.urn]
    [finding] = spot_interruption_handling.check([pool], NO_CONFIG)
    assert "EC2 Spot Instance Interruption Warning" in finding.message
    assert "settings.interruptionQueue" in finding.message


def test_a_rule_for_other_events_is_not_an_interruption_queue() -> None:
    pool = _spot_pool()
    others = b.interruption_resources("EC2 Instance State-change Notification")
    assert interruption_findings([pool, *others]) == [pool.urn]


def test_on_demand_pools_need_no_interruption_queue() -> None:
    assert interruption_findings([_spot_pool(["on-demand"])]) == []


def test_spot_managed_node_group_needs_one_too() -> None:
    group = b.resource(
        "aws:eks/nodeGroup:NodeGroup",
        "g",
        b.mutated(b.eks_node_group_props(), "capacityType", "SPOT"),
    )
    assert interruption_findings([group]) == [group.urn]
    assert interruption_findings([group], {"externalInterruptionQueue": "shared"}) == []


def test_karpenter_release_without_interruption_queue_is_flagged() -> None:
    values = {"settings": {"clusterName": "c", "interruptionQueue": "q"}}
    release = b.resource(
        "kubernetes:helm.sh/v3:Release",
        "karpenter",
        {"chart": "oci://public.ecr.aws/karpenter/karpenter", "values": values},
    )
    assert interruption_findings([release]) == []
    # The eksctl #7697 mistake: the key is spelt the old way and the setting is empty.
    broken = b.mutated(release.props, "values.settings", {"aws": {"interruptionQueueName": "q"}})
    bad = b.resource("kubernetes:helm.sh/v3:Release", "karpenter", broken)
    assert interruption_findings([bad]) == [bad.urn]


def _karpenter(queue: str) -> Resource:
    return b.resource(
        "kubernetes:helm.sh/v3:Release",
        "karpenter",
        {
            "chart": "oci://public.ecr.aws/karpenter/karpenter",
            "values": {"settings": {"clusterName": "c", "interruptionQueue": queue}},
        },
    )


def test_the_queue_karpenter_reads_complies() -> None:
    queue = b.interruption_resources()
    assert interruption_findings([_spot_pool(), _karpenter("interruption"), *queue]) == []


def test_an_interruption_queue_karpenter_does_not_read_is_flagged() -> None:
    """Karpenter reads one --interruption-queue (aws/karpenter-provider-aws
    pkg/operator/options): a queue it does not read drains nothing, here or when the
    cluster's Karpenter (outside the stack) reads the one named in the config."""
    pool, resources = _spot_pool(), b.interruption_resources()
    unread = resources[0]
    findings = spot_interruption_handling.check([pool, _karpenter("other"), *resources], NO_CONFIG)
    assert sorted(f.urn for f in findings) == sorted([unread.urn, pool.urn])
    assert any("not the queue Karpenter reads (other)" in f.message for f in findings)
    external = {"externalInterruptionQueue": "shared"}
    assert interruption_findings([pool, *resources], external) == [unread.urn]


# ---------------------------------------------------------------------------------------------
# 10. scoped-inference-identities


def identity_findings(resources: list[Resource], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return [f.message for f in scoped_inference_identities.check(resources, config)]


SCOPED = {
    "Sid": "ConsumeJobs",
    "Effect": "Allow",
    "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
    "Resource": "arn:aws:sqs:us-east-1:123456789012:jobs",
}


def test_scoped_worker_policy_complies() -> None:
    role = b.pod_role()
    assert identity_findings([role, b.role_policy(role, [SCOPED])]) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Action": "sqs:*"}, "allows 'sqs:*'"),
        ({"Action": ["s3:Get*"]}, "allows 's3:Get*'"),
        ({"Action": "*"}, "allows '*'"),
        ({"Resource": "*"}, "allows 'sqs:ReceiveMessage' on every resource"),
        # Issue 22 item 1: a wildcard in any ARN segment is as wide as `*`.
        ({"Resource": None, "NotResource": "arn:aws:sqs:us-east-1:1:x"}, "on every resource"),
        ({"Resource": "arn:aws:sqs:*:123456789012:jobs"}, "a wildcard in its region"),
        ({"Resource": "arn:aws:sqs:us-east-1:*:jobs"}, "a wildcard in its account"),
        ({"Resource": "arn:aws:sqs:us-east-1:123456789012:job?"}, "a wildcard in its resource"),
        ({"Resource": ["arn:aws:sqs:us-east-1:123456789012:*"]}, "a wildcard in its resource"),
        ({"Resource": "arn:*:sqs:us-east-1:123456789012:jobs"}, "a wildcard in its partition"),
        ({"Resource": "arn:aws:sq*:us-east-1:123456789012:jobs"}, "a wildcard in its service"),
    ],
)
def test_wildcard_data_plane_permissions_are_flagged(change: dict[str, Any], expected: str) -> None:
    role = b.pod_role()
    [message] = identity_findings([role, b.role_policy(role, [{**SCOPED, **change}])])[:1]
    assert expected in message
    assert "statement ConsumeJobs" in message


def test_wildcards_inside_arns_of_a_hand_written_program_are_flagged() -> None:
    """Held out: the shapes issue 22 found (`results_bucket: '*'`, a wildcard KMS key ARN),
    written by hand rather than by the components, on an IRSA role."""
    role = b.irsa_role()
    statements = [
        {
            "Sid": "Results",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::*/*",
        },
        {"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::*"},
        {
            "Sid": "Key",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": "arn:aws:kms:*:*:key/*",
        },
    ]
    messages = identity_findings([role, b.role_policy(role, statements)])
    assert any("statement Results allows 's3:GetObject'" in m and "resource" in m for m in messages)
    assert any("statement List allows 's3:ListBucket'" in m for m in messages)
    assert any("statement Key allows 'kms:Decrypt'" in m and "its region" in m for m in messages)


def test_an_object_prefix_of_a_named_bucket_complies() -> None:
    """S3 grants objects by key prefix: `bucket/prefix/*` is the worker's own results."""
    role = b.irsa_role()
    statements = [
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::results/llm/*"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::results/*"},
        {
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": "arn:aws:kms:us-east-1:123456789012:key/"
            "1234abcd-12ab-34cd-56ef-1234567890ab",
        },
    ]
    assert identity_findings([role, b.role_policy(role, statements)]) == []
    wide = [{**statements[0], "Resource": "arn:aws:s3:::res*/llm/*"}]
    assert identity_findings([role, b.role_policy(role, wide)])


def test_roles_that_are_not_pod_roles_are_not_judged() -> None:
    node = b.resource("aws:iam/role:Role", "node", {"assumeRolePolicy": "{}"})
    assert identity_findings([node, b.role_policy(node, [{**SCOPED, "Action": "sqs:*"}])]) == []
    tagged = b.resource("aws:iam/role:Role", "t", {"tags": {"inferstack.io/service": "llm"}})
    assert identity_findings([tagged, b.role_policy(tagged, [{**SCOPED, "Action": "sqs:*"}])])


def test_describe_on_every_resource_is_not_data_plane() -> None:
    role = b.pod_role()
    describe = {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}
    assert identity_findings([role, b.role_policy(role, [describe])]) == []


# Trust policies (issue 22 item 1): every role of the stack, written by hand or not.

FOREIGN = "999999999999"


def trusting(principal: Any, name: str = "queue-reader", **statement: Any) -> Resource:
    """A role as a hand-written program declares it: no tags, not a pod role."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Assume", "Effect": "Allow", "Principal": principal,
             "Action": "sts:AssumeRole", **statement}
        ],
    }  # fmt: skip
    return b.resource("aws:iam/role:Role", name, {"assumeRolePolicy": json.dumps(trust)})


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("*", "admits any principal (*: '*')"),
        ({"AWS": "*"}, "admits any principal (AWS: '*')"),
        ({"AWS": ["arn:aws:iam::123456789012:role/keda", "*"]}, "admits any principal"),
        ({"Service": "*"}, "admits any principal (Service: '*')"),
        ({"AWS": "arn:aws:iam::*:root"}, "admits any principal"),
        ({"AWS": f"arn:aws:iam::{FOREIGN}:root"}, f"every identity of account {FOREIGN}"),
        ({"AWS": FOREIGN}, f"every identity of account {FOREIGN} ('{FOREIGN}', its root)"),
        ({"AWS": f"arn:aws-us-gov:iam::{FOREIGN}:root"}, f"account {FOREIGN}"),
    ],
)
def test_a_hand_written_trust_admitting_anyone_or_a_foreign_root_is_flagged(
    principal: Any, expected: str
) -> None:
    """Held out: a KEDA queue-reader role written without the components (issue 22: a
    keda_operator_role naming another account's root was admitted)."""
    role = trusting(principal)
    [finding] = scoped_inference_identities.check([role], NO_CONFIG)
    assert finding.urn == role.urn
    assert finding.message.startswith("IAM role trust: trust statement Assume admits ")
    assert expected in finding.message
    assert "trustedAccounts" in finding.message


def test_not_principal_in_an_allow_admits_everyone_else() -> None:
    role = b.resource(
        "aws:iam/role:Role",
        "open",
        {
            "assumeRolePolicy": json.dumps(
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "NotPrincipal": {"AWS": FOREIGN},
                            "Action": "sts:AssumeRole",
                        }
                    ]
                }  # fmt: skip
            )
        },
    )
    [message] = identity_findings([role])
    assert "admits every principal but those listed (NotPrincipal)" in message


def test_a_condition_does_not_exempt_a_wildcard_principal() -> None:
    role = trusting("*", Condition={"StringEquals": {"sts:ExternalId": "x"}})
    assert identity_findings([role])


def test_an_account_listed_as_trusted_or_the_stacks_own_passes() -> None:
    root = trusting({"AWS": f"arn:aws:iam::{FOREIGN}:root"})
    assert identity_findings([root], {"trustedAccounts": [FOREIGN]}) == []
    assert identity_findings([root], {"accountId": FOREIGN}) == []
    assert identity_findings([root], {"trustedAccounts": ["111111111111"]})


def test_another_accounts_role_is_flagged_once_the_stacks_account_is_known() -> None:
    keda = trusting({"AWS": f"arn:aws:iam::{FOREIGN}:role/keda-operator"})
    # Unknown (preview of a new stack, no accountId): a role ARN cannot be judged.
    assert identity_findings([keda]) == []
    [message] = identity_findings([keda], {"accountId": "123456789012"})
    assert f"admits 'arn:aws:iam::{FOREIGN}:role/keda-operator' of account {FOREIGN}" in message
    assert "not this stack's (123456789012)" in message
    # The stack's account also comes from the ARN a role of the stack reports.
    known = b.pod_role(arn="arn:aws:iam::123456789012:role/worker")
    assert identity_findings([keda, known])
    own = trusting({"AWS": "arn:aws:iam::123456789012:role/keda-operator"})
    assert identity_findings([own, known]) == []


def test_the_components_trusts_pass() -> None:
    """Pods (Pod Identity), an OIDC provider (IRSA), EC2 (nodes) and a same-account role."""
    node = trusting({"Service": "ec2.amazonaws.com"}, name="node")
    scaler = trusting({"AWS": "arn:aws:iam::123456789012:role/keda-operator"}, name="scaler")
    roles = [b.pod_role(), b.irsa_role(), node, scaler]
    assert identity_findings(roles, {"accountId": "123456789012"}) == []
    assert identity_findings(roles) == []


@pytest.mark.parametrize(
    ("value", "account", "root"),
    [
        # The forms of IAM User Guide, "AWS JSON policy elements: Principal"
        # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html):
        # an account by ARN or by its bare ID (stored as the root ARN), a role, an assumed-role
        # session, a user, and a unique ID (left after the identity is deleted).
        ("arn:aws:iam::123456789012:root", "123456789012", True),
        ("123456789012", "123456789012", True),
        ("arn:aws:iam::123456789012:role/role-name", "123456789012", False),
        ("arn:aws:iam::123456789012:role/path/role-name", "123456789012", False),
        (
            "arn:aws:sts::123456789012:assumed-role/role-name/role-session-name",
            "123456789012",
            False,
        ),
        ("arn:aws:iam::123456789012:user/user-name", "123456789012", False),
        ("arn:aws-cn:iam::123456789012:root", "123456789012", True),
        ("AIDACKCEVSQ6C2EXAMPLE", None, False),
    ],
)
def test_aws_principals_are_read_as_the_iam_reference_writes_them(
    value: str, account: str | None, root: bool
) -> None:
    assert scoped_inference_identities.aws_principal(value) == (
        scoped_inference_identities.AwsPrincipal(account, root)
    )
    assert scoped_inference_identities.aws_principal("arn:aws:iam::*:root") is None


# ---------------------------------------------------------------------------------------------
# 11. private-results-bucket


def bucket_findings(resources: list[Resource], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return [f.message for f in private_results_bucket.check(resources, config)]


def test_bucket_with_a_full_public_access_block_complies() -> None:
    assert bucket_findings(b.bucket_with_block()) == []


def test_bucket_without_a_public_access_block_is_flagged() -> None:
    bucket, _ = b.bucket_with_block()
    [message] = bucket_findings([bucket])
    assert "no public access block" in message
    assert bucket_findings([bucket], {"publicBuckets": ["results"]}) == []


def test_a_partial_public_access_block_names_the_flags_left_off() -> None:
    [message] = bucket_findings(b.bucket_with_block(restrictPublicBuckets=False))
    assert "leaves restrictPublicBuckets off" in message


def test_karpenters_interruption_queue_needs_no_dead_letter_queue() -> None:
    """It carries EC2 events (stale in minutes), not jobs: async-spot-durability leaves it."""
    resources = b.interruption_resources()
    assert async_spot_durability.check(resources, NO_CONFIG) == []
    job_queue = b.resource("aws:sqs/queue:Queue", "jobs", {"name": "jobs"})
    [finding] = async_spot_durability.check([*resources, job_queue], NO_CONFIG)
    assert finding.urn == job_queue.urn


# ---------------------------------------------------------------------------------------------
# 12. image-pinned-by-digest


@pytest.mark.parametrize(
    ("image", "flagged"),
    [
        (b.PINNED_IMAGE, False),
        ("ghcr.io/inferstack/runtime@sha256:" + "1" * 64, False),
        ("ghcr.io/inferstack/runtime:0.1.0", True),
        ("ghcr.io/inferstack/runtime", True),
        ("ghcr.io/inferstack/runtime:0.1.0@sha256:short", True),
    ],
)
def test_image_pinned_by_digest(image: str, flagged: bool) -> None:
    props = b.mutated(b.deployment_props(), "spec.template.spec.containers.0.image", image)
    messages = image_pinned_by_digest.check(
        b.resource("kubernetes:apps/v1:Deployment", "llm", props), NO_CONFIG
    )
    assert bool(messages) is flagged
    if flagged:
        assert "container model runs image" in messages[0]
        assert "repository:tag@sha256:<digest>" in messages[0]


def test_image_digest_is_not_judged_outside_inference_workloads() -> None:
    props = b.mutated(b.deployment_props(), "spec.template.spec.containers.0.image", "nginx:1")
    props = b.mutated(props, "metadata.labels", {"app": "web"})
    props = b.mutated(props, "spec.template.metadata.labels", {"app": "web"})
    props = b.mutated(props, "spec.template.spec.containers.0.resources", {})
    web = b.resource("kubernetes:apps/v1:Deployment", "web", props)
    assert image_pinned_by_digest.check(web, NO_CONFIG) == []


# ---------------------------------------------------------------------------------------------
# 13. gpu-capacity-follows-demand


def fixed_findings(resources: list[Resource], config: dict[str, Any] = NO_CONFIG) -> list[str]:
    return [f.urn for f in gpu_capacity_follows_demand.check(resources, config)]


def _hpa(minimum: float, maximum: float) -> Resource:
    return b.resource(
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
        "llm-hpa",
        {
            "metadata": {"name": "llm"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"},
                "minReplicas": minimum,
                "maxReplicas": maximum,
            },
        },
    )


def test_a_gpu_deployment_with_a_demand_autoscaler_complies() -> None:
    assert fixed_findings([b.deployment(), b.scaled_object()]) == []
    assert fixed_findings([b.deployment(), b.http_scaled_object()]) == []
    assert fixed_findings([b.deployment(), _hpa(1.0, 4.0)]) == []


def test_the_issue_case_a_fixed_gpu_deployment_with_no_autoscaler_is_flagged() -> None:
    """pulumi/examples' self-hosted LLM server: one GPU replica, no autoscaler, at every hour."""
    deployment = b.deployment()
    [finding] = gpu_capacity_follows_demand.check([deployment], NO_CONFIG)
    assert finding.urn == deployment.urn
    assert "no autoscaler targets it" in finding.message


@pytest.mark.parametrize(
    "scaler",
    [
        b.scaled_object(
            b.mutated(
                b.mutated(b.scaled_object_props(), "spec.minReplicaCount", 8.0),
                "spec.maxReplicaCount",
                8.0,
            )
        ),
        _hpa(3.0, 3.0),
        b.http_scaled_object(b.mutated(b.http_scaled_object_props(), "spec.replicas.min", 8.0)),
    ],
    ids=["scaled-object", "hpa", "http-scaled-object"],
)
def test_an_autoscaler_whose_minimum_is_its_maximum_is_flagged(scaler: Resource) -> None:
    deployment = b.deployment()
    [finding] = gpu_capacity_follows_demand.check([deployment, scaler], NO_CONFIG)
    assert finding.urn == deployment.urn
    assert "minimum equals its maximum" in finding.message


def test_fixed_size_is_configurable_and_cpu_workloads_pass() -> None:
    props = b.mutated(b.deployment_props(), "spec.replicas", 2.0)
    two = b.resource("kubernetes:apps/v1:Deployment", "llm", props)
    assert fixed_findings([two], {"allowFixedReplicas": 2}) == []
    assert fixed_findings([two], {"allowFixedReplicas": 1}) == [two.urn]
    cpu = b.mutated(b.deployment_props(), "spec.template.spec.containers.0.resources", {})
    assert fixed_findings([b.resource("kubernetes:apps/v1:Deployment", "web", cpu)]) == []


def test_gpu_capacity_follows_demand_is_advisory() -> None:
    assert gpu_capacity_follows_demand.RULE.enforcement == "advisory"
