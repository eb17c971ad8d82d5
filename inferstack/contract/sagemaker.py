"""What SageMaker interprets: the container contract, and the scaling and metric vocabulary.

Two audiences read these strings and neither may spell them itself:
- the runtime answers SageMaker's container contract (`docker run <image> serve`, `GET /ping`,
  `POST /invocations`, port 8080), from "Use your own inference code with hosting services"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-inference-code.html);
- the SageMaker component writes, and the policy pack reads, the Application Auto Scaling and
  CloudWatch names of "Automatic scaling of Amazon SageMaker AI models"
  (https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling.html), "Scale an
  endpoint to zero instances" (.../endpoint-auto-scaling-zero-instances.html), "Define a scaling
  policy" (.../endpoint-auto-scaling-add-code-define.html) and "Autoscale an asynchronous
  endpoint" (.../async-inference-autoscale.html).

Where the docs and the API disagree the API wins: the enumerations (predefined metric types,
scalable dimensions, routing strategies, the service namespace) are checked in
tests/components/sagemaker/test_names.py against the service models botocore ships (the API's own
definition); the CloudWatch metric names, which no API model enumerates, against the pages above.
"""

from dataclasses import dataclass
from typing import Final

SERVE_ARGUMENT: Final = "serve"
"""SageMaker starts a hosting container as `docker run <image> serve`."""
PORT: Final = 8080
"""SageMaker sends every request to this container port."""
PING_PATH: Final = "/ping"
"""Health: 200 within 2 s once the model is loaded (SageMaker waits for it before routing)."""
INVOCATIONS_PATH: Final = "/invocations"
"""Inference: the body as the caller sent it (here a KServe v2 request), answered within 60 s."""
PROTOCOL_SETTING: Final = "protocol"
"""The runtime setting (`INFERSTACK_PROTOCOL`) whose value `sagemaker` chooses this contract."""
PROTOCOL_VALUE: Final = "sagemaker"
COLD_START_ACCEPTED_TAG: Final = "inferstack.io/cold-start-over-budget"
"""Tag of a realtime endpoint configuration that may reach zero instances knowingly: the spec
set `realtime.allow_cold_start_over_budget` (the pack's sagemaker-realtime-zero reads it)."""
COLD_START_ACCEPTED_VALUE: Final = "accepted"


@dataclass(frozen=True)
class SageMakerNames:
    """Every SageMaker, Application Auto Scaling and CloudWatch name written or read here."""

    service_namespace: str
    """Application Auto Scaling's service namespace of SageMaker resources."""
    copy_count: str
    """Scalable dimension of an inference component: its copies."""
    instance_count: str
    """Scalable dimension of a production variant: its instances (the async endpoint's)."""
    concurrency_per_copy: str
    """Predefined metric (high resolution, 10 s) for target tracking an inference component."""
    concurrency_per_model: str
    """Predefined metric (high resolution) for target tracking a variant without components."""
    invocations_per_copy: str
    invocations_per_instance: str
    """The older predefined invocation-rate metrics (one-minute; demand signals too)."""
    metric_namespace: str
    """CloudWatch namespace of the endpoint invocation metrics."""
    utilisation_namespace: str
    """CloudWatch namespace of instance CPU / GPU utilisation (`/aws/sagemaker/Endpoints`)."""
    utilisation_metrics: frozenset[str]
    """Instance utilisation metrics: a supply signal, never the only one a policy scales on."""
    no_capacity_failures: str
    """Requests an inference component had no copy for (the wake signal at zero copies)."""
    backlog_per_instance: str
    """Async: queued requests per instance (the async endpoint's scaling metric)."""
    backlog_without_capacity: str
    """Async: 1 while requests wait and no instance runs (the wake signal at zero)."""
    inference_component_dimension: str
    endpoint_dimension: str
    variant_dimension: str
    routing_strategies: frozenset[str]
    """Routing strategies of a production variant."""


_NAMES: Final = SageMakerNames(
    service_namespace="sagemaker",
    copy_count="sagemaker:inference-component:DesiredCopyCount",
    instance_count="sagemaker:variant:DesiredInstanceCount",
    concurrency_per_copy="SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
    concurrency_per_model="SageMakerVariantConcurrentRequestsPerModelHighResolution",
    invocations_per_copy="SageMakerInferenceComponentInvocationsPerCopy",
    invocations_per_instance="SageMakerVariantInvocationsPerInstance",
    metric_namespace="AWS/SageMaker",
    utilisation_namespace="/aws/sagemaker/Endpoints",
    utilisation_metrics=frozenset(
        {"CPUUtilization", "GPUUtilization", "MemoryUtilization", "GPUMemoryUtilization"}
    ),
    no_capacity_failures="NoCapacityInvocationFailures",
    backlog_per_instance="ApproximateBacklogSizePerInstance",
    backlog_without_capacity="HasBacklogWithoutCapacity",
    inference_component_dimension="InferenceComponentName",
    endpoint_dimension="EndpointName",
    variant_dimension="VariantName",
    routing_strategies=frozenset({"LEAST_OUTSTANDING_REQUESTS", "RANDOM"}),
)


@dataclass(frozen=True)
class TargetTrackingAlarms:
    """The CloudWatch alarms Application Auto Scaling creates for a target tracking policy.

    It creates two per policy and marks them "DO NOT EDIT OR DELETE": AlarmHigh fires when
    `high_datapoints` consecutive datapoints exceed the target (scale out), AlarmLow when
    `low_datapoints` consecutive datapoints sit under `scale_in_fraction` of it (scale in); the
    new capacity is proportional, `ceil(capacity * metric / target)`. "How target tracking
    scaling for Application Auto Scaling works"
    (https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html)
    says the policy scales in only once the metric is "usually more than 10% lower" than the
    target, and "Target tracking scaling policies for Application Auto Scaling"
    (.../application-auto-scaling-target-tracking.html) that a metric emitting real zeros scales
    in to a minimum of 0; neither page, nor the EC2 Auto Scaling page on high-resolution metrics
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/policy-creating-high-resolution-metrics.html,
    the 10 s period), gives the datapoint counts.

    UNVERIFIED: 3 and 15 are what users read off the managed alarms (AlarmHigh "3 datapoints
    within 3 minutes", AlarmLow "15 datapoints within 15 minutes": aws/containers-roadmap#1208,
    aws/copilot-cli#4233, hashicorp/terraform-provider-aws#42553; some metrics get others:
    aws-cloudformation/cloudformation-coverage-roadmap#2353). Searched on 2026-12-07 (docs,
    pages and issues corpora, and awsdocs/application-auto-scaling-user-guide's source) for the
    AWS page stating them, with and without "high-resolution" and "SageMaker inference
    components": none does. Re-check against `aws cloudwatch describe-alarms` on a real policy.
    The counts are of datapoints, so on a high-resolution metric (10 s) the same 3 are 30 s.
    """

    high_datapoints: int
    low_datapoints: int
    scale_in_fraction: float
    high_resolution_period_s: int
    """Period of a high-resolution metric's datapoints (ConcurrentRequestsPerCopy...)."""
    standard_period_s: int
    """Period of a standard metric's datapoints (ApproximateBacklogSizePerInstance, the wake
    alarms' NoCapacityInvocationFailures and HasBacklogWithoutCapacity)."""


_ALARMS: Final = TargetTrackingAlarms(
    high_datapoints=3,
    low_datapoints=15,
    scale_in_fraction=0.9,
    high_resolution_period_s=10,
    standard_period_s=60,
)


def target_tracking_alarms() -> TargetTrackingAlarms:
    """The one source of target tracking's alarm datapoints and periods (unverified counts)."""
    return _ALARMS


def sagemaker_names() -> SageMakerNames:
    """The one source of every SageMaker scaling and metric name (see the module docstring)."""
    return _NAMES


def inference_component_resource_id(component: str) -> str:
    """Application Auto Scaling's resource id of an inference component."""
    return f"inference-component/{component}"


def variant_resource_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's resource id of a production variant."""
    return f"endpoint/{endpoint}/variant/{variant}"
