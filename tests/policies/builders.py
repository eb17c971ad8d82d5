"""Builders of wire-form resources that comply with every rule: each test changes one field."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from inferstack.contract import metrics as metric_names
from inferstack.contract.labels import SERVICE_LABEL, TIER_LABEL
from inferstack.policies.resources import Resource

STACK_URN = "urn:pulumi:ci::cases::pulumi:pulumi:Stack::cases-ci"


def urn(resource_type: str, name: str) -> str:
    return f"urn:pulumi:ci::cases::pulumi:pulumi:Stack${resource_type}::{name}"


def resource(resource_type: str, name: str, props: dict[str, Any], **extra: Any) -> Resource:
    return Resource(
        type=resource_type, name=name, urn=urn(resource_type, name), props=props, **extra
    )


PINNED_IMAGE = "ghcr.io/inferstack/runtime:0.1.0@sha256:" + "0" * 64


def tier_labels(service: str = "llm", tier: str = "realtime") -> dict[str, str]:
    return {TIER_LABEL: tier, SERVICE_LABEL: service}


def pod_spec() -> dict[str, Any]:
    return {
        "nodeSelector": {"karpenter.sh/capacity-type": "on-demand"},
        "terminationGracePeriodSeconds": 30.0,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000.0},
        "containers": [
            {
                "name": "model",
                "image": PINNED_IMAGE,
                "resources": {
                    "requests": {"nvidia.com/gpu": "1"},
                    "limits": {"nvidia.com/gpu": "1"},
                },
            }
        ],
    }


def deployment_props(name: str = "llm", tier: str = "realtime") -> dict[str, Any]:
    labels = tier_labels(name, tier)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels), "annotations": {}},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec()},
        },
    }


def deployment(name: str = "llm", tier: str = "realtime", **extra: Any) -> Resource:
    return resource("kubernetes:apps/v1:Deployment", name, deployment_props(name, tier), **extra)


def queue_depth_trigger() -> dict[str, Any]:
    return {
        "type": "prometheus",
        "metadata": {"query": f"sum({metric_names.QUEUE_DEPTH})", "threshold": "8"},
    }


def scaled_object_props(target: Any = "llm") -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "llm", "labels": tier_labels()},
        "spec": {
            "scaleTargetRef": {"name": target},
            "minReplicaCount": 1.0,
            "maxReplicaCount": 8.0,
            "triggers": [queue_depth_trigger()],
        },
    }


def scaled_object(props: dict[str, Any] | None = None, **extra: Any) -> Resource:
    return resource(
        "kubernetes:keda.sh/v1alpha1:ScaledObject", "llm", props or scaled_object_props(), **extra
    )


def http_scaled_object_props() -> dict[str, Any]:
    return {
        "apiVersion": "http.keda.sh/v1alpha1",
        "kind": "HTTPScaledObject",
        "metadata": {"name": "llm", "labels": tier_labels()},
        "spec": {
            "hosts": ["llm.internal"],
            "scaleTargetRef": {
                "name": "llm",
                "kind": "Deployment",
                "service": "llm",
                "port": 8080.0,
            },
            "replicas": {"min": 0.0, "max": 8.0},
            "timeouts": {"conditionWait": "2m"},
        },
    }


def http_scaled_object(props: dict[str, Any] | None = None) -> Resource:
    return resource(
        "kubernetes:http.keda.sh/v1alpha1:HTTPScaledObject",
        "llm-http",
        props or http_scaled_object_props(),
    )


def skipping_http_scaled_object() -> Resource:
    """An HTTPScaledObject that leaves the ScaledObject to the user (kedacore/http-add-on)."""
    props = mutated(
        http_scaled_object_props(),
        "metadata.annotations",
        {"httpscaledobject.keda.sh/skip-scaledobject-creation": "true"},
    )
    return http_scaled_object(props)


def external_push_trigger(**metadata: str) -> dict[str, Any]:
    """The KEDA HTTP add-on's trigger, naming an InterceptorRoute or an HTTPScaledObject."""
    return {
        "type": "external-push",
        "metadata": {"scalerAddress": "keda-add-ons-http-external-scaler.keda:9090", **metadata},
    }


def interceptor_route(name: str = "llm") -> Resource:
    return resource(
        "kubernetes:http.keda.sh/v1beta1:InterceptorRoute",
        f"{name}-route",
        {"metadata": {"name": name}, "spec": {"target": {"service": "llm", "port": 8080.0}}},
    )


def eks_node_group_props() -> dict[str, Any]:
    return {
        "clusterName": "inference",
        "capacityType": "ON_DEMAND",
        "instanceTypes": ["g6.xlarge"],
        "labels": {TIER_LABEL: "realtime"},
        "scalingConfig": {"minSize": 1.0, "desiredSize": 1.0, "maxSize": 16.0},
    }


def gke_node_pool_props() -> dict[str, Any]:
    return {
        "cluster": "inference",
        "nodeConfig": {
            "machineType": "g2-standard-8",
            "guestAccelerators": [{"type": "nvidia-l4", "count": 1.0}],
            "labels": {TIER_LABEL: "realtime"},
        },
        "autoscaling": {"minNodeCount": 1.0, "maxNodeCount": 8.0},
    }


COMPUTE_CLASS = "kubernetes:cloud.google.com/v1:ComputeClass"
PUBSUB_AGENT = "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"


def compute_class_props() -> dict[str, Any]:
    return {
        "apiVersion": "cloud.google.com/v1",
        "kind": "ComputeClass",
        "metadata": {"name": "llm", "labels": tier_labels()},
        "spec": {
            "priorities": [{"machineFamily": "g2", "spot": False}],
            "whenUnsatisfiable": "DoNotScaleUp",
        },
    }


def bucket_props() -> dict[str, Any]:
    return {
        "name": "results",
        "location": "US-CENTRAL1",
        "uniformBucketLevelAccess": True,
        "publicAccessPrevention": "enforced",
    }


def pubsub_dead_letter_case() -> list[Resource]:
    """A subscription with a dead-letter topic and the service agent's two bindings."""
    topic = resource("gcp:pubsub/topic:Topic", "jobs", {"name": "jobs"})
    dead = resource("gcp:pubsub/topic:Topic", "dlq", {"name": "dlq"})
    subscription = resource(
        "gcp:pubsub/subscription:Subscription",
        "jobs-sub",
        {"name": "jobs-sub", "topic": "", "deadLetterPolicy": {"maxDeliveryAttempts": 5.0}},
        property_dependencies={"topic": (topic.urn,), "deadLetterPolicy": (dead.urn,)},
    )
    publisher = resource(
        "gcp:pubsub/topicIAMMember:TopicIAMMember",
        "agent-publisher",
        {"topic": "dlq", "role": "roles/pubsub.publisher", "member": PUBSUB_AGENT},
        property_dependencies={"topic": (dead.urn,)},
    )
    subscriber = resource(
        "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember",
        "agent-subscriber",
        {"subscription": "jobs-sub", "role": "roles/pubsub.subscriber", "member": PUBSUB_AGENT},
        property_dependencies={"subscription": (subscription.urn,)},
    )
    return [subscription, topic, dead, publisher, subscriber]


def mutated(props: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `props` with the dotted `path` set to `value` (None deletes it)."""
    copied = copy.deepcopy(props)
    *parents, last = path.split(".")
    node: Any = copied
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is None:
        if isinstance(node, dict):
            node.pop(last, None)
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copied


@dataclass
class Record:
    """A hand-written registration, shaped like `inferstack.offline.capture.CapturedResource`."""

    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    parent: str = STACK_URN
    custom: bool = True
    provider: str = ""
    dependencies: list[str] = field(default_factory=list)
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    version: str = "4.34.2"


def stack_record() -> Record:
    return Record(
        "pulumi:pulumi:Stack", "cases-ci", STACK_URN, {}, parent="", custom=False, version=""
    )


def record(resource_type: str, name: str, inputs: dict[str, Any], **extra: Any) -> Record:
    return Record(resource_type, name, urn(resource_type, name), inputs, **extra)


# ---------------------------------------------------------------------------------------------
# AWS: Karpenter capacity, interruption queue, identities, results bucket

KARPENTER_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def karpenter_pool_props(capacity: list[str], tier: str = "batch") -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": f"llm-{tier}"},
        "spec": {
            "template": {
                "metadata": {"labels": tier_labels(tier=tier)},
                "spec": {
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity},
                        {
                            "key": "node.kubernetes.io/instance-type",
                            "operator": "In",
                            "values": ["g6.xlarge"],
                        },
                    ]
                },
            },
            "limits": {"nvidia.com/gpu": "8"},
        },
    }


def interruption_resources(
    detail_type: str = "EC2 Spot Instance Interruption Warning",
) -> list[Resource]:
    """An SQS queue, an EventBridge rule for `detail_type`, and the target joining them."""
    import json

    queue = resource("aws:sqs/queue:Queue", "interruption", {"name": "interruption"})
    rule = resource(
        "aws:cloudwatch/eventRule:EventRule",
        "spot",
        {"eventPattern": json.dumps({"source": ["aws.ec2"], "detail-type": [detail_type]})},
    )
    target = resource(
        "aws:cloudwatch/eventTarget:EventTarget",
        "spot-target",
        {"targetId": "karpenter"},
        property_dependencies={"rule": (rule.urn,), "arn": (queue.urn,)},
    )
    return [queue, rule, target]


def pod_role(name: str = "worker", **props: Any) -> Resource:
    import json

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }
    return resource("aws:iam/role:Role", name, {"assumeRolePolicy": json.dumps(trust), **props})


def irsa_role(name: str = "batch") -> Resource:
    """A worker role trusted through IRSA (a Federated OIDC principal), as a program written
    without the components declares it: the rule must judge it all the same."""
    import json

    trust = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1"
                    ".amazonaws.com/id/EXAMPLE"
                },
                "Action": "sts:AssumeRoleWithWebIdentity",
            }
        ]
    }
    return resource("aws:iam/role:Role", name, {"assumeRolePolicy": json.dumps(trust)})


def role_policy(role: Resource, statements: list[dict[str, Any]]) -> Resource:
    import json

    document = {"Version": "2012-10-17", "Statement": statements}
    return resource(
        "aws:iam/rolePolicy:RolePolicy",
        f"{role.name}-policy",
        {"policy": json.dumps(document)},
        property_dependencies={"role": (role.urn,)},
    )


def bucket_with_block(**flags: Any) -> list[Resource]:
    bucket = resource("aws:s3/bucket:Bucket", "results", {"bucket": "results"})
    block_props = {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
        **flags,
    }
    block = resource(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "results-block",
        block_props,
        property_dependencies={"bucket": (bucket.urn,)},
    )
    return [bucket, block]
