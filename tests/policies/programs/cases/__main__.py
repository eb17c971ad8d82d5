"""Fixture program: one case per policy, compliant unless the policy is named in config.

`policy-cases:violate` is a comma-separated list of policy names (or `all`); for each named
policy exactly one value in its case changes, and that change is the only difference between its
compliant and violating fixture. Every case is otherwise compliant with every other policy, so a
run names exactly the policies it was asked to violate. Resources are written with the SDK's own
classes, so the pack sees the wire form a real program sends.
"""

import json
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp
import pulumi_kubernetes as k8s

from inferstack.contract import metrics as metric_names
from inferstack.contract.env import ENV_MAX_QUEUE_DELAY_MS
from inferstack.contract.labels import (
    COLD_START_SECONDS_ANNOTATION,
    LATENCY_BUDGET_MS_ANNOTATION,
    MAX_JOB_SECONDS_ANNOTATION,
    SERVICE_LABEL,
    TIER_LABEL,
)

raw = pulumi.Config("policy-cases").get("violate") or ""
VIOLATE = {name.strip() for name in raw.split(",") if name.strip()}


def violates(policy: str) -> bool:
    return "all" in VIOLATE or policy in VIOLATE


def labels(service: str, tier: str = "realtime") -> dict[str, str]:
    return {TIER_LABEL: tier, SERVICE_LABEL: service}


PINNED_IMAGE = "ghcr.io/inferstack/runtime:0.1.0@sha256:" + "0" * 64


def container(env: list[dict[str, Any]] | None = None, image: str = PINNED_IMAGE) -> dict[str, Any]:
    return {
        "name": "model",
        "image": image,
        "env": env or [],
        "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}},
        "security_context": {"run_as_non_root": True, "run_as_user": 1000},
    }


def deployment(
    service: str,
    *,
    tier: str = "realtime",
    node_selector: dict[str, str] | None = None,
    env: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
    grace_seconds: int = 30,
    named: bool = True,
    image: str = PINNED_IMAGE,
) -> k8s.apps.v1.Deployment:
    pod_labels = labels(service, tier)
    metadata: dict[str, Any] = {"labels": pod_labels, "annotations": annotations or {}}
    if named:
        metadata["name"] = service
    return k8s.apps.v1.Deployment(
        service,
        metadata=metadata,
        spec={
            "selector": {"match_labels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "node_selector": node_selector or {"karpenter.sh/capacity-type": "on-demand"},
                    "termination_grace_period_seconds": grace_seconds,
                    "containers": [container(env, image)],
                },
            },
        },
    )


def scaled_object(
    name: str,
    target_name: pulumi.Input[str],
    triggers: list[dict[str, Any]],
    *,
    min_replicas: int = 1,
    max_replicas: int = 8,
    tier: str = "realtime",
) -> k8s.apiextensions.CustomResource:
    return k8s.apiextensions.CustomResource(
        name,
        api_version="keda.sh/v1alpha1",
        kind="ScaledObject",
        metadata={"name": name, "labels": labels(name, tier)},
        spec={
            "scaleTargetRef": {"name": target_name},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "triggers": triggers,
        },
    )


def queue_depth_trigger(service: str) -> dict[str, Any]:
    return {
        "type": "prometheus",
        "metadata": {
            "serverAddress": "http://prometheus.monitoring:9090",
            "query": f'sum({metric_names.QUEUE_DEPTH}{{service="{service}"}})',
            "threshold": "8",
        },
    }


def autoscaled(name: str, *, tier: str = "realtime") -> None:
    """A demand autoscaler for a case's GPU Deployment, so gpu-capacity-follows-demand passes it."""
    scaled_object(name, name, [queue_depth_trigger(name)], tier=tier)


# 1. no-spot-for-realtime: the realtime pods select on-demand (compliant) or spot nodes.
deployment(
    "spot-case",
    node_selector={
        "karpenter.sh/capacity-type": "spot" if violates("no-spot-for-realtime") else "on-demand"
    },
)
autoscaled("spot-case")

# 2. scale-to-zero-needs-wake-path: minReplicaCount 1, or 0 with only the runtime's own
# queue-depth metric (gone at zero replicas). The Deployment is autonamed, so the ScaledObject
# finds it through its dependency on the Deployment's name output, as in a real preview.
zero = deployment("zero-case", named=False)
scaled_object(
    "zero-case",
    zero.metadata.name,
    [queue_depth_trigger("zero-case")],
    min_replicas=0 if violates("scale-to-zero-needs-wake-path") else 1,
)

# 3. demand-signal-autoscaling: the trigger reads queue depth, or GPU utilisation instead.
demand = deployment("demand-case")
gpu_utilisation = {
    "type": "prometheus",
    "metadata": {
        "serverAddress": "http://prometheus.monitoring:9090",
        "query": 'avg(DCGM_FI_DEV_GPU_UTIL{pod=~"demand-case-.*"})',
        "threshold": "80",
    },
}
scaled_object(
    "demand-case",
    "demand-case",
    [
        gpu_utilisation
        if violates("demand-signal-autoscaling")
        else queue_depth_trigger("demand-case")
    ],
)

# 4. bounded-gpu-capacity: the GPU node group's max size is within the ceiling, or above it.
aws.eks.NodeGroup(
    "bounded-case",
    cluster_name="inference",
    node_role_arn="arn:aws:iam::123456789012:role/nodes",
    subnet_ids=["subnet-0a", "subnet-0b"],
    instance_types=["g6.xlarge"],
    capacity_type="ON_DEMAND",
    labels={TIER_LABEL: "realtime"},
    scaling_config={
        "min_size": 1,
        "desired_size": 1,
        "max_size": 500 if violates("bounded-gpu-capacity") else 16,
    },
)

# 5. queue-delay-within-budget: the runtime's max queue delay is 8 ms, or 60 ms, of 150 ms.
delay_ms = "60" if violates("queue-delay-within-budget") else "8"
deployment(
    "delay-case",
    env=[{"name": ENV_MAX_QUEUE_DELAY_MS, "value": delay_ms}],
    annotations={LATENCY_BUDGET_MS_ANNOTATION: "150"},
)
autoscaled("delay-case")

# 6. async-spot-durability: the work queue redrives to a DLQ, or has no redrive policy.
# The DLQ says it is one (redriveAllowPolicy), so it needs no DLQ of its own even when unused.
dead_letter = aws.sqs.Queue(
    "durable-case-dlq",
    message_retention_seconds=1209600,
    redrive_allow_policy=json.dumps({"redrivePermission": "allowAll"}),
)
work_queue = aws.sqs.Queue(
    "durable-case",
    visibility_timeout_seconds=900,
    tags={MAX_JOB_SECONDS_ANNOTATION: "600"},
    redrive_policy=None
    if violates("async-spot-durability")
    else dead_letter.arn.apply(
        lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
    ),
)
gcp_topic = gcp.pubsub.Topic("durable-case-jobs")
gcp_dead_letter = gcp.pubsub.Topic("durable-case-dead-letter")
gcp_subscription = gcp.pubsub.Subscription(
    "durable-case-workers",
    topic=gcp_topic.id,
    ack_deadline_seconds=600,
    dead_letter_policy={"dead_letter_topic": gcp_dead_letter.id, "max_delivery_attempts": 5},
)
deployment(
    "durable-case-worker",
    tier="batch",
    node_selector={"karpenter.sh/capacity-type": "spot"},
    env=[{"name": "QUEUE_URL", "value": work_queue.url}],
    annotations={MAX_JOB_SECONDS_ANNOTATION: "600"},
    grace_seconds=110,
)
autoscaled("durable-case-worker", tier="batch")

# 7. cold-start-within-hold-timeout: the interceptor holds requests 120 s, or 20 s, against a
# declared 90 s cold start.
cold = deployment("cold-case", annotations={COLD_START_SECONDS_ANNOTATION: "90"})
k8s.apiextensions.CustomResource(
    "cold-case",
    api_version="http.keda.sh/v1alpha1",
    kind="HTTPScaledObject",
    metadata={"name": "cold-case", "labels": labels("cold-case")},
    spec={
        "hosts": ["cold-case.inference.internal"],
        "scaleTargetRef": {
            "name": "cold-case",
            "kind": "Deployment",
            "service": "cold-case",
            "port": 8080,
        },
        "replicas": {"min": 0, "max": 8},
        "timeouts": {
            "conditionWait": "20s" if violates("cold-start-within-hold-timeout") else "120s"
        },
    },
)

# 8. inference-security: the inference LoadBalancer is internal, or public.
lb_annotations = (
    {}
    if violates("inference-security")
    else {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"}
)
k8s.core.v1.Service(
    "secure-case",
    metadata={
        "name": "secure-case",
        "labels": labels("secure-case"),
        "annotations": lb_annotations,
    },
    spec={
        "type": "LoadBalancer",
        "selector": labels("secure-case"),
        "ports": [{"port": 80, "target_port": 8080}],
    },
)

# 9. pubsub-dead-letter-bindings: the Pub/Sub service agent may publish to the dead-letter topic
# and acknowledge on the subscription above, or lacks the second binding.
PUBSUB_AGENT = "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"
gcp.pubsub.TopicIAMMember(
    "durable-case-agent-publisher",
    topic=gcp_dead_letter.name,
    role="roles/pubsub.publisher",
    member=PUBSUB_AGENT,
)
if not violates("pubsub-dead-letter-bindings"):
    gcp.pubsub.SubscriptionIAMMember(
        "durable-case-agent-subscriber",
        subscription=gcp_subscription.name,
        role="roles/pubsub.subscriber",
        member=PUBSUB_AGENT,
    )

# 10. bucket-public-access-prevention: the results bucket enforces public access prevention, or
# inherits whatever the organisation says.
gcp.storage.Bucket(
    "private-case",
    location="US-CENTRAL1",
    uniform_bucket_level_access=True,
    public_access_prevention=(
        "inherited" if violates("bucket-public-access-prevention") else "enforced"
    ),
)

# 11. spot-interruption-handling: a Karpenter spot NodePool with an interruption queue that an
# EventBridge rule for spot warnings targets, or without that queue.
k8s.apiextensions.CustomResource(
    "interruption-case",
    api_version="karpenter.sh/v1",
    kind="NodePool",
    metadata={"name": "interruption-case"},
    spec={
        "template": {
            "metadata": {"labels": labels("interruption-case", "batch")},
            "spec": {
                "nodeClassRef": {
                    "group": "karpenter.k8s.aws",
                    "kind": "EC2NodeClass",
                    "name": "gpu",
                },
                "requirements": [
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": ["spot", "on-demand"],
                    },
                    {
                        "key": "node.kubernetes.io/instance-type",
                        "operator": "In",
                        "values": ["g6.xlarge", "g6.2xlarge", "g6.4xlarge"],
                    },
                ],
            },
        },
        "limits": {"nvidia.com/gpu": "8"},
    },
)
if not violates("spot-interruption-handling"):
    interruption_queue = aws.sqs.Queue(
        "interruption-case-queue", message_retention_seconds=300, sqs_managed_sse_enabled=True
    )
    interruption_rule = aws.cloudwatch.EventRule(
        "interruption-case-rule",
        event_pattern=json.dumps(
            {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
        ),
    )
    aws.cloudwatch.EventTarget(
        "interruption-case-target", rule=interruption_rule.name, arn=interruption_queue.arn
    )

# 12. scoped-inference-identities: the worker's Pod Identity role reads one queue, or `sqs:*`.
worker_role = aws.iam.Role(
    "scoped-case-role",
    assume_role_policy=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                }
            ],
        }
    ),
)
aws.iam.RolePolicy(
    "scoped-case",
    role=worker_role.name,
    policy=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sqs:*"
                    if violates("scoped-inference-identities")
                    else ["sqs:ReceiveMessage", "sqs:DeleteMessage"],
                    "Resource": "arn:aws:sqs:us-east-1:123456789012:jobs",
                }
            ],
        }
    ),
)

# 13. private-results-bucket: the results bucket has a public access block, or none.
results = aws.s3.Bucket("results-case")
if not violates("private-results-bucket"):
    aws.s3.BucketPublicAccessBlock(
        "results-case-block",
        bucket=results.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
    )

# 14. image-pinned-by-digest: the realtime image is pinned by digest, or named by its tag alone.
deployment(
    "digest-case",
    image="ghcr.io/inferstack/runtime:0.1.0"
    if violates("image-pinned-by-digest")
    else PINNED_IMAGE,
)
autoscaled("digest-case")

# 15. gpu-capacity-follows-demand: the GPU Deployment has a demand autoscaler, or runs a fixed
# replica count with none (the self-hosted LLM server of pulumi/examples).
deployment("fixed-case")
if not violates("gpu-capacity-follows-demand"):
    autoscaled("fixed-case")

# GKE raw types that comply in every run: a bounded realtime L4 pool on on-demand VMs, and a
# realtime ComputeClass that never asks for Spot.
gcp.container.NodePool(
    "gke-realtime-case",
    cluster="inference",
    location="us-central1",
    autoscaling={"total_min_node_count": 1, "total_max_node_count": 8},
    node_config={
        "machine_type": "g2-standard-8",
        "guest_accelerators": [{"type": "nvidia-l4", "count": 1}],
        "labels": labels("gke-realtime-case"),
    },
)
k8s.apiextensions.CustomResource(
    "gke-realtime-class",
    api_version="cloud.google.com/v1",
    kind="ComputeClass",
    metadata={"name": "gke-realtime-class", "labels": labels("gke-realtime-class")},
    spec={"priorities": [{"machineFamily": "g2", "spot": False}]},
)

# 16-20. Raw SageMaker resources, as a team writes them without the component.
SM_ARN = "arn:aws:sns:us-east-1:123456789012"


def sm_realtime_variant(minimum: int, maximum: int) -> dict[str, Any]:
    return {
        "variant_name": "AllTraffic",
        "instance_type": "ml.g6.xlarge",
        "initial_instance_count": 1,
        "managed_instance_scaling": {
            "status": "ENABLED",
            "min_instance_count": minimum,
            "max_instance_count": maximum,
        },
        "routing_configs": [{"routing_strategy": "LEAST_OUTSTANDING_REQUESTS"}],
    }


def sm_copies(name: str) -> aws.appautoscaling.Target:
    return aws.appautoscaling.Target(
        f"{name}-copies",
        service_namespace="sagemaker",
        scalable_dimension="sagemaker:inference-component:DesiredCopyCount",
        resource_id=f"inference-component/{name}",
        min_capacity=1,
        max_capacity=4,
    )


def sm_concurrency(name: str, target: aws.appautoscaling.Target, metric: dict[str, Any]) -> None:
    aws.appautoscaling.Policy(
        f"{name}-policy",
        policy_type="TargetTrackingScaling",
        service_namespace=target.service_namespace,
        scalable_dimension=target.scalable_dimension,
        resource_id=target.resource_id,
        target_tracking_scaling_policy_configuration={"target_value": 20.0, **metric},
    )


CONCURRENCY = {
    "predefined_metric_specification": {
        "predefined_metric_type": (
            "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
        )
    }
}
GPU_UTILISATION = {
    "customized_metric_specification": {
        "metric_name": "GPUUtilization",
        "namespace": "/aws/sagemaker/Endpoints",
        "statistic": "Average",
    }
}

# 16. sagemaker-bounded-capacity: the realtime variant's managed scaling has a sane maximum.
aws.sagemaker.EndpointConfiguration(
    "sm-bounded-case",
    execution_role_arn="arn:aws:iam::123456789012:role/sm-execution",
    production_variants=[
        sm_realtime_variant(1, 500 if violates("sagemaker-bounded-capacity") else 4)
    ],
)
sm_concurrency("sm-bounded-case", sm_copies("sm-bounded-case"), CONCURRENCY)

# 17. sagemaker-realtime-zero: a realtime variant that never reaches zero instances.
aws.sagemaker.EndpointConfiguration(
    "sm-zero-case",
    execution_role_arn="arn:aws:iam::123456789012:role/sm-execution",
    production_variants=[sm_realtime_variant(0 if violates("sagemaker-realtime-zero") else 1, 4)],
)

# 18. sagemaker-demand-scaling: copies track concurrent requests, not GPU utilisation.
sm_concurrency(
    "sm-demand-case",
    sm_copies("sm-demand-case"),
    GPU_UTILISATION if violates("sagemaker-demand-scaling") else CONCURRENCY,
)

# 19. sagemaker-async-error-destination: failures land in S3 and on an error topic.
aws.sagemaker.EndpointConfiguration(
    "sm-async-case",
    production_variants=[
        {
            "variant_name": "AllTraffic",
            "model_name": "sm-async-model",
            "instance_type": "ml.g6.xlarge",
            "initial_instance_count": 1,
        }
    ],
    async_inference_config={
        "output_config": {
            "s3_output_path": "s3://team-async/out/",
            "s3_failure_path": "s3://team-async/failed/",
            "notification_config": {
                "success_topic": f"{SM_ARN}:sm-success",
                **(
                    {}
                    if violates("sagemaker-async-error-destination")
                    else {"error_topic": f"{SM_ARN}:sm-error"}
                ),
            },
        },
        "client_config": {"max_concurrent_invocations_per_instance": 8},
    },
)


# 20. sagemaker-async-wake: an async variant scaled to zero is woken by its backlog alarm.
sm_instances = aws.appautoscaling.Target(
    "sm-wake-case-instances",
    service_namespace="sagemaker",
    scalable_dimension="sagemaker:variant:DesiredInstanceCount",
    resource_id="endpoint/sm-wake-case/variant/AllTraffic",
    min_capacity=0,
    max_capacity=4,
)
sm_wake_step = aws.appautoscaling.Policy(
    "sm-wake-case-step",
    policy_type="StepScaling",
    service_namespace=sm_instances.service_namespace,
    scalable_dimension=sm_instances.scalable_dimension,
    resource_id=sm_instances.resource_id,
    step_scaling_policy_configuration={
        "adjustment_type": "ChangeInCapacity",
        "cooldown": 300,
        "step_adjustments": [{"scaling_adjustment": 1, "metric_interval_lower_bound": "0"}],
    },
)
if not violates("sagemaker-async-wake"):
    aws.cloudwatch.MetricAlarm(
        "sm-wake-case-alarm",
        namespace="AWS/SageMaker",
        metric_name="HasBacklogWithoutCapacity",
        dimensions={"EndpointName": "sm-wake-case"},
        statistic="Average",
        period=60,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        alarm_actions=[sm_wake_step.arn],
    )


def cloud_run_gpu_service(
    name: str, *, max_instances: int | None = 4, concurrency: int = 48
) -> gcp.cloudrunv2.Service:
    """A GPU Cloud Run service running the batching runtime (batch 32)."""
    template: dict[str, Any] = {
        "max_instance_request_concurrency": concurrency,
        "node_selector": {"accelerator": "nvidia-l4"},
        "gpu_zonal_redundancy_disabled": True,
        "containers": [
            {
                "image": PINNED_IMAGE,
                "envs": [{"name": "INFERSTACK_MAX_BATCH_SIZE", "value": "32"}],
                "resources": {
                    "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                    "cpu_idle": False,
                },
            }
        ],
    }
    if max_instances is not None:
        template["scaling"] = {"max_instance_count": max_instances}
    return gcp.cloudrunv2.Service(
        name, name=name, location="us-central1", project="acme-inference", template=template
    )


# 20. cloudrun-bounded-gpu-service: the GPU service has a maximum instance count.
cloud_run_gpu_service(
    "cr-bounded-case",
    max_instances=None if violates("cloudrun-bounded-gpu-service") else 4,
)

# 21. cloudrun-private-gpu-service: only the gateway's identity may invoke the GPU service.
cloud_run_gpu_service("cr-private-case")
gcp.cloudrunv2.ServiceIamMember(
    "cr-private-case-invoker",
    name="cr-private-case",
    location="us-central1",
    project="acme-inference",
    role="roles/run.invoker",
    member=(
        "allUsers"
        if violates("cloudrun-private-gpu-service")
        else "serviceAccount:gateway@acme-inference.iam.gserviceaccount.com"
    ),
)

# 22. cloudrun-concurrency-fills-batch: an instance admits at least one batch of 32.
cloud_run_gpu_service(
    "cr-concurrency-case",
    concurrency=1 if violates("cloudrun-concurrency-fills-batch") else 48,
)
