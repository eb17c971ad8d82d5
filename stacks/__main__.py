"""The inferstack Pulumi program: one service from the stack config, on the stack's target.

Config keys: `inferstack:service` (the spec, see README), `inferstack:target` (`kubernetes`, the
default, `gcp`, `aws`, `sagemaker` or `cloudrun`), `inferstack:kubernetes` (cluster-side options:
namespace, Prometheus URL, batch queue binding; see `KubernetesOptions`) and, on the gcp target,
`inferstack:gcp` (project, region, cluster; see `GcpOptions`), on the aws target `inferstack:aws`
(cluster, region, subnets, identities; see `AwsOptions`), on the sagemaker target
`inferstack:sagemaker` (region, ECR image, async bucket; see `SageMakerOptions`), on the
cloudrun target `inferstack:cloudrun` (project, region, image, invokers; see `CloudRunOptions`).
The program
reads config once, plans the service once (`from_values`, the reader `inferstack preview`,
`check` and `simulate` use too), and hands the plan to the components; components never read
config and never size.
"""

from pathlib import Path

import pulumi

from inferstack.components.kubernetes.component import KubernetesInferenceService
from inferstack.offline.stack_config import CONFIG_KEYS, NAMESPACE, engine_values, from_values

PROJECT_DIR = Path(__file__).resolve().parent.parent  # relative profile paths start here

# The one place that reads Pulumi config: every `inferstack:*` key, in the engine's form.
config = pulumi.Config(NAMESPACE)
found = {key: config.get(key) for key in CONFIG_KEYS}
stack = from_values(
    engine_values({f"{NAMESPACE}:{key}": text for key, text in found.items() if text is not None}),
    project_dir=PROJECT_DIR,
)
if stack.target == "gcp":
    from inferstack.components.gcp.component import GcpInferenceStack

    assert stack.gcp is not None
    gcp_stack = GcpInferenceStack(stack.spec.name, stack.plan, stack.gcp, stack.kubernetes)
    service = gcp_stack.service
    pulumi.export("subscription", gcp_stack.subscription)
    pulumi.export("dead_letter_subscription", gcp_stack.dead_letter_subscription)
    pulumi.export("results_uri", gcp_stack.results_uri)
    pulumi.export("image", gcp_stack.image)
    pulumi.export("node_pools", gcp_stack.node_pools)
elif stack.target == "aws":
    import pulumi_aws as aws

    from inferstack.components.aws.component import AwsInferenceStack
    from inferstack.components.aws.controller import KarpenterController

    assert stack.aws is not None
    # The region option decides where everything is created, whatever the ambient AWS config.
    provider = aws.Provider("aws", region=stack.aws.region)
    on_aws = pulumi.ResourceOptions(providers={"aws": provider})
    # The cluster's one Karpenter, named after the cluster: the service's NodePools share it.
    karpenter = (
        KarpenterController(stack.aws.cluster_name, stack.aws, opts=on_aws)
        if stack.aws.install_karpenter
        else None
    )
    aws_stack = AwsInferenceStack(
        stack.spec.name,
        stack.plan,
        stack.aws,
        stack.kubernetes,
        karpenter=karpenter,
        opts=on_aws,
    )
    service = aws_stack.service
    pulumi.export("queue_url", aws_stack.queue_url)
    pulumi.export("dead_letter_queue_url", aws_stack.dead_letter_queue_url)
    pulumi.export("results_uri", aws_stack.results_uri)
    pulumi.export("interruption_queue", aws_stack.interruption_queue)
    pulumi.export("node_role", aws_stack.node_role)
    pulumi.export("repository_url", aws_stack.repository_url)
    pulumi.export("queue_scaler_role_arn", aws_stack.queue_scaler_role_arn)
elif stack.target == "sagemaker":
    import pulumi_aws as aws
    import pulumi_aws_native as aws_native

    from inferstack.components.sagemaker.component import SageMakerInferenceStack

    assert stack.sagemaker is not None
    # Both providers in the region option: the inference component is aws-native's.
    region = stack.sagemaker.region
    providers = {
        "aws": aws.Provider("aws", region=region),
        "aws-native": aws_native.Provider("aws-native", region=region),
    }
    sagemaker_stack = SageMakerInferenceStack(
        stack.spec.name,
        stack.plan,
        stack.sagemaker,
        opts=pulumi.ResourceOptions(providers=providers),
    )
    pulumi.export("realtime_endpoint", sagemaker_stack.realtime_endpoint)
    pulumi.export("inference_component", sagemaker_stack.inference_component)
    pulumi.export("async_endpoint", sagemaker_stack.async_endpoint)
    pulumi.export("async_input_uri", sagemaker_stack.async_input_uri)
    pulumi.export("async_failure_uri", sagemaker_stack.async_failure_uri)
    pulumi.export("error_topic", sagemaker_stack.error_topic)
    pulumi.export("execution_role_arn", sagemaker_stack.execution_role_arn)
    service = None  # SageMaker runs the endpoints; no Kubernetes workloads
elif stack.target == "cloudrun":
    from inferstack.components.cloudrun.component import CloudRunInferenceStack

    assert stack.cloudrun is not None
    cloudrun_stack = CloudRunInferenceStack(stack.spec.name, stack.plan, stack.cloudrun)
    pulumi.export("service_uri", cloudrun_stack.service_uri)
    pulumi.export("worker_pool", cloudrun_stack.worker_pool)
    pulumi.export("subscription", cloudrun_stack.subscription)
    pulumi.export("dead_letter_subscription", cloudrun_stack.dead_letter_subscription)
    pulumi.export("results_uri", cloudrun_stack.results_uri)
    service = None  # Cloud Run runs the service and the worker pool; no Kubernetes workloads
else:
    service = KubernetesInferenceService(stack.spec.name, stack.plan, stack.kubernetes)

pulumi.export("sizing", stack.plan.sizing.to_dict())
pulumi.export("cost", stack.plan.cost.to_dict())
if service is not None:
    pulumi.export("service_url", service.service_url)
    pulumi.export("realtime_workload", service.realtime_workload)
    pulumi.export("batch_workload", service.batch_workload)
    pulumi.export("realtime_scaled_object", service.realtime_scaled_object)
    pulumi.export("batch_scaled_object", service.batch_scaled_object)
