"""`SageMakerInferenceStack`: a planned service on SageMaker's managed endpoints.

From the same plan as the Kubernetes and cloud targets:
- the realtime pool is an endpoint with an inference component, the only SageMaker hosting
  form that scales to zero ("Scale an endpoint to zero instances",
  https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-zero-instances.html):
  the endpoint configuration's variant has managed instance scaling (minimum 0 when the spec
  allows scale-to-zero, else the plan's floor; maximum the plan's) and a routing strategy, and
  no model of its own; the model (the runtime image from ECR) runs as the component's copies,
  each with the pool's accelerators ("Deploy models for real-time inference with inference
  components", https://docs.aws.amazon.com/sagemaker/latest/dg/realtime-endpoints-deploy-models.html).
  pulumi-aws 7 has no inference component resource; pulumi-aws-native's
  `sagemaker.InferenceComponent` (Cloud Control, `AWS::SageMaker::InferenceComponent`) is used
  for that one resource, pulumi-aws for every other;
- the batch pool is an asynchronous endpoint ("Asynchronous inference",
  https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference.html): results under the
  output path, failures under the failure path and on the error topic (where a user finds and
  replays them: the SageMaker form of a dead letter), successes on the success topic, at most
  the plan's batch per instance at once;
- Application Auto Scaling and CloudWatch alarms as `scaling` derives them;
- one execution role whose documents `iam` writes.

Constructor order (see DESIGN.md): validate before any child exists; children named
`{name}-{role}` parented to this component; outputs; `register_outputs` last.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Final

import pulumi
import pulumi_aws as aws
import pulumi_aws_native as aws_native

from inferstack.components.planning.plan import ServicePlan, target_problems
from inferstack.components.planning.pools import BatchPool, RealtimePool
from inferstack.components.sagemaker import container, iam
from inferstack.components.sagemaker.names import ServiceNames, partition_of, topic_arn
from inferstack.components.sagemaker.options import SageMakerOptions, model_object
from inferstack.components.sagemaker.scaling import (
    VARIANT_NAME,
    AsyncScaling,
    RealtimeScaling,
    WakeAlarm,
    async_scaling,
    realtime_scaling,
)
from inferstack.contract.resource_types import SAGEMAKER_STACK
from inferstack.contract.sagemaker import (
    COLD_START_ACCEPTED_TAG,
    COLD_START_ACCEPTED_VALUE,
    inference_component_resource_id,
    sagemaker_names,
    variant_resource_id,
)
from inferstack.errors import Problem, SpecError

TYPE_TOKEN: Final = SAGEMAKER_STACK
MIN_MEMORY_MB: Final = 4096
"""Host memory a copy reserves: the server, the batcher and a model staged on the CPU before it
moves to the GPU (the profiled models need under 2 GiB; raise it for larger weights)."""
MODEL_DOWNLOAD_TIMEOUT_S: Final = 600
"""SageMaker's own model download is unused (the runtime fetches the model); its budget stays
well above the image pull."""


def plan_problems(plan: ServicePlan, options: SageMakerOptions) -> list[Problem]:
    """What this target cannot build for `plan`, with `options`: each with its field and fix."""
    names = [
        Problem("name", f"{problem}; shorten the service name")
        for problem in ServiceNames.of(plan.spec.name).problems()
    ]
    return options.problems(plan.spec) + target_problems(plan, "sagemaker") + names


class SageMakerInferenceStack(pulumi.ComponentResource):
    """A GPU inference service on SageMaker: inference components, async endpoint, scaling."""

    realtime_endpoint: pulumi.Output[str] | None
    """The realtime endpoint's name (InvokeEndpoint with `InferenceComponentName`)."""
    inference_component: pulumi.Output[str | None] | None
    """The realtime inference component's name."""
    async_endpoint: pulumi.Output[str] | None
    """The asynchronous endpoint's name (InvokeEndpointAsync)."""
    async_input_uri: str | None
    """Where callers put asynchronous requests (`s3://BUCKET/PREFIX/input/`)."""
    async_output_uri: str | None
    async_failure_uri: str | None
    """Where failed requests' errors land: to find and replay them."""
    success_topic: pulumi.Output[str] | None
    error_topic: pulumi.Output[str] | None
    """The SNS topic of failed asynchronous requests."""
    execution_role_arn: pulumi.Output[str]
    sizing_output: pulumi.Output[dict[str, Any]]
    """The plan's sizing with the SageMaker scaling derived from it (what the preview prints)."""
    cost_output: pulumi.Output[dict[str, Any]]
    """The plan's monthly cost, lever by lever, at SageMaker hosting prices."""

    def __init__(
        self,
        name: str,
        plan: ServicePlan,
        options: SageMakerOptions,
        *,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, {}, opts)
        problems = plan_problems(plan, options)
        if problems:
            raise SpecError(problems, source="SageMakerInferenceStack options")
        self.plan, self.options = plan, options
        spec = plan.spec
        image = options.ecr_image
        child = pulumi.ResourceOptions(parent=self)
        realtime, batch = plan.realtime, plan.batch
        paths = (
            iam.AsyncPaths(options.async_bucket, f"{options.async_prefix}/{spec.name}")
            if batch is not None and options.async_bucket is not None
            else None
        )

        names = ServiceNames.of(spec.name)
        self.names = names
        endpoints = [names.realtime_endpoint] if realtime is not None else []
        topics: list[aws.sns.Topic] = []
        if paths is not None:
            endpoints.append(names.async_endpoint)
            topics = [
                aws.sns.Topic(f"{name}-async-success", name=names.success_topic, opts=child),
                aws.sns.Topic(f"{name}-async-error", name=names.error_topic, opts=child),
            ]
        role = aws.iam.Role(
            f"{name}-execution",
            assume_role_policy=json.dumps(iam.trust_policy()),
            description=f"SageMaker execution role of {spec.name}: its image, model, async paths",
            opts=child,
        )
        grants = iam.RoleGrants(
            partition=partition_of(options.region),
            region=options.region,
            account=image.account,
            repository_arn=image.repository_arn,
            endpoints=tuple(endpoints),
            model_object=model_object(spec.model.uri),
            model_key=options.model_key(),
            async_paths=paths,
            topic_arns=tuple(
                topic_arn(options.region, image.account, topic)
                for topic in ((names.success_topic, names.error_topic) if topics else ())
            ),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-execution",
            role=role.id,
            policy=json.dumps(iam.execution_policy(grants)),
            opts=child,
        )
        after_policy = pulumi.ResourceOptions(parent=self, depends_on=[policy])

        self.realtime_endpoint = self.inference_component = None
        if realtime is not None:
            endpoint, component = self._realtime(name, realtime, role, after_policy)
            self.realtime_endpoint = endpoint.name
            self.inference_component = component.inference_component_name

        self.async_endpoint = self.success_topic = self.error_topic = None
        self.async_input_uri = self.async_output_uri = self.async_failure_uri = None
        if batch is not None and paths is not None:
            success, error = topics
            async_endpoint = self._async(name, batch, role, paths, success, error, after_policy)
            self.async_endpoint = async_endpoint.name
            self.success_topic, self.error_topic = success.arn, error.arn
            self.async_input_uri = paths.uri(paths.input)
            self.async_output_uri = paths.uri(paths.output)
            self.async_failure_uri = paths.uri(paths.failure)
        self.execution_role_arn = role.arn
        sizing = plan.sizing.to_dict()
        platform = {}
        if realtime is not None:
            platform["realtime inference component"] = asdict(realtime_scaling(plan, realtime))
        if batch is not None:
            platform["asynchronous endpoint"] = asdict(async_scaling(plan, batch))
        sizing["platform"] = {"SageMaker": platform}
        self.sizing_output = pulumi.Output.from_input(sizing)
        self.cost_output = pulumi.Output.from_input(plan.cost.to_dict())
        self.register_outputs(
            {
                "sizing": self.sizing_output,
                "cost": self.cost_output,
                "realtime_endpoint": self.realtime_endpoint,
                "inference_component": self.inference_component,
                "async_endpoint": self.async_endpoint,
                "success_topic": self.success_topic,
                "error_topic": self.error_topic,
                "execution_role_arn": self.execution_role_arn,
            }
        )

    def _model(
        self, name: str, batch_size: int, role: aws.iam.Role, opts: pulumi.ResourceOptions
    ) -> aws.sagemaker.Model:
        return aws.sagemaker.Model(
            name,
            execution_role_arn=role.arn,
            primary_container={
                "image": self.options.image,
                "environment": container.environment(self.plan.spec, batch_size),
            },
            opts=opts,
        )

    def _realtime(
        self,
        name: str,
        pool: RealtimePool,
        role: aws.iam.Role,
        opts: pulumi.ResourceOptions,
    ) -> tuple[aws.sagemaker.Endpoint, aws_native.sagemaker.InferenceComponent]:
        scaling = realtime_scaling(self.plan, pool)
        model = self._model(f"{name}-realtime", pool.sizing.batch_size.value, role, opts)
        accepted = pool.spec.scale_to_zero and pool.spec.allow_cold_start_over_budget
        config = aws.sagemaker.EndpointConfiguration(
            f"{name}-realtime",
            execution_role_arn=role.arn,
            # At zero SageMaker answers errors for a cold start: the spec accepted that.
            tags={COLD_START_ACCEPTED_TAG: COLD_START_ACCEPTED_VALUE} if accepted else None,
            production_variants=[
                {
                    "variant_name": VARIANT_NAME,
                    "instance_type": scaling.instance_type,
                    "initial_instance_count": scaling.initial_copies.value,
                    # One copy per instance: the instances follow the copies, down to zero.
                    "managed_instance_scaling": {
                        "status": "ENABLED",
                        "min_instance_count": scaling.min_copies.value,
                        "max_instance_count": scaling.max_copies.value,
                    },
                    "routing_configs": [{"routing_strategy": self.options.routing_strategy}],
                }
            ],
            opts=opts,
        )
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-realtime",
            name=self.names.realtime_endpoint,
            endpoint_config_name=config.name,
            opts=opts,
        )
        component = aws_native.sagemaker.InferenceComponent(
            f"{name}-realtime",
            inference_component_name=self.names.inference_component,
            endpoint_name=endpoint.name,
            variant_name=VARIANT_NAME,
            specification={
                "model_name": model.name,
                "compute_resource_requirements": {
                    "number_of_accelerator_devices_required": scaling.accelerators_per_copy,
                    "min_memory_required_in_mb": MIN_MEMORY_MB,
                },
                "startup_parameters": {
                    "container_startup_health_check_timeout_in_seconds": scaling.startup_timeout_s,
                    "model_data_download_timeout_in_seconds": MODEL_DOWNLOAD_TIMEOUT_S,
                },
            },
            runtime_config={"copy_count": scaling.initial_copies.value},
            opts=opts,
        )
        self._copies_scaling(name, scaling, component)
        return endpoint, component

    def _copies_scaling(
        self,
        name: str,
        scaling: RealtimeScaling,
        component: aws_native.sagemaker.InferenceComponent,
    ) -> None:
        names = sagemaker_names()
        ic = self.names.inference_component
        target = aws.appautoscaling.Target(
            f"{name}-realtime-copies",
            service_namespace=names.service_namespace,
            scalable_dimension=names.copy_count,
            resource_id=inference_component_resource_id(ic),
            min_capacity=scaling.min_copies.value,
            max_capacity=scaling.max_copies.value,
            # Registering a component that does not exist yet fails: wait for it.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[component]),
        )
        on_target = pulumi.ResourceOptions(parent=target)
        aws.appautoscaling.Policy(
            f"{name}-realtime-concurrency",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": scaling.target_concurrency.value,
                "predefined_metric_specification": {
                    "predefined_metric_type": scaling.predefined_metric
                },
                "scale_in_cooldown": scaling.scale_in_cooldown_s,
                "scale_out_cooldown": scaling.scale_out_cooldown_s,
            },
            opts=on_target,
        )
        if scaling.wake is not None:
            dimensions = {names.inference_component_dimension: ic}
            self._wake(f"{name}-realtime", scaling.wake, target, dimensions)
        for floor in scaling.schedule:
            aws.appautoscaling.ScheduledAction(
                f"{name}-realtime-{floor.name}",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                schedule=floor.schedule,
                timezone=floor.timezone,
                scalable_target_action={
                    "min_capacity": floor.min_capacity,
                    "max_capacity": floor.max_capacity,
                },
                opts=on_target,
            )

    def _wake(
        self,
        name: str,
        wake: WakeAlarm,
        target: aws.appautoscaling.Target,
        dimensions: dict[str, str],
    ) -> None:
        on_target = pulumi.ResourceOptions(parent=target)
        step = aws.appautoscaling.Policy(
            f"{name}-wake",
            policy_type="StepScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            step_scaling_policy_configuration={
                "adjustment_type": "ChangeInCapacity",
                "metric_aggregation_type": wake.statistic,
                "cooldown": wake.cooldown_s,
                "step_adjustments": [
                    {"scaling_adjustment": wake.adjustment, "metric_interval_lower_bound": "0"}
                ],
            },
            opts=on_target,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-wake",
            alarm_description=wake.reason,
            namespace=sagemaker_names().metric_namespace,
            metric_name=wake.metric,
            dimensions=dimensions,
            statistic=wake.statistic,
            period=wake.period_s,
            evaluation_periods=wake.evaluation_periods,
            datapoints_to_alarm=wake.datapoints_to_alarm,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="missing",
            alarm_actions=[step.arn],
            opts=pulumi.ResourceOptions(parent=step),
        )

    def _async(
        self,
        name: str,
        pool: BatchPool,
        role: aws.iam.Role,
        paths: iam.AsyncPaths,
        success: aws.sns.Topic,
        error: aws.sns.Topic,
        opts: pulumi.ResourceOptions,
    ) -> aws.sagemaker.Endpoint:
        scaling = async_scaling(self.plan, pool)
        model = self._model(f"{name}-async", pool.sizing.batch_size.value, role, opts)
        config = aws.sagemaker.EndpointConfiguration(
            f"{name}-async",
            production_variants=[
                {
                    "variant_name": VARIANT_NAME,
                    "model_name": model.name,
                    "instance_type": scaling.instance_type,
                    "initial_instance_count": 1,
                    "container_startup_health_check_timeout_in_seconds": scaling.startup_timeout_s,
                }
            ],
            async_inference_config={
                "output_config": {
                    "s3_output_path": paths.uri(paths.output),
                    "s3_failure_path": paths.uri(paths.failure),
                    "notification_config": {
                        "success_topic": success.arn,
                        "error_topic": error.arn,
                    },
                },
                "client_config": {
                    "max_concurrent_invocations_per_instance": (
                        scaling.max_concurrent_invocations.value
                    )
                },
            },
            opts=opts,
        )
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-async",
            name=self.names.async_endpoint,
            endpoint_config_name=config.name,
            opts=opts,
        )
        self._instances_scaling(name, scaling, endpoint)
        return endpoint

    def _instances_scaling(
        self, name: str, scaling: AsyncScaling, endpoint: aws.sagemaker.Endpoint
    ) -> None:
        names = sagemaker_names()
        ep = self.names.async_endpoint
        target = aws.appautoscaling.Target(
            f"{name}-async-instances",
            service_namespace=names.service_namespace,
            scalable_dimension=names.instance_count,
            resource_id=variant_resource_id(ep, VARIANT_NAME),
            min_capacity=scaling.min_instances.value,
            max_capacity=scaling.max_instances.value,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[endpoint]),
        )
        dimensions = {names.endpoint_dimension: ep}
        aws.appautoscaling.Policy(
            f"{name}-async-backlog",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": scaling.target_backlog.value,
                "customized_metric_specification": {
                    "metric_name": scaling.metric,
                    "namespace": names.metric_namespace,
                    "statistic": "Average",
                    "dimensions": [{"name": names.endpoint_dimension, "value": ep}],
                },
                "scale_in_cooldown": scaling.scale_in_cooldown_s,
                "scale_out_cooldown": scaling.scale_out_cooldown_s,
            },
            opts=pulumi.ResourceOptions(parent=target),
        )
        if scaling.wake is not None:
            self._wake(f"{name}-async", scaling.wake, target, dimensions)


__all__ = ["TYPE_TOKEN", "SageMakerInferenceStack", "plan_problems"]
