"""Every SageMaker name the project writes, checked against its upstream source.

The API wins where the docs and the API disagree: each enumerated value is looked up in the
service model botocore ships (`application-autoscaling` and `sagemaker` service-2.json, the
AWS API's own definition). CloudWatch metric names are in no API model; they are checked
against the AWS pages that define them, quoted here with their address.
"""

from __future__ import annotations

import botocore.session
import pytest

from inferstack.components.planning.clouds import SAGEMAKER
from inferstack.components.planning.pricing import default_price_table, machine_price
from inferstack.contract.sagemaker import (
    inference_component_resource_id,
    sagemaker_names,
    target_tracking_alarms,
    variant_resource_id,
)

NAMES = sagemaker_names()


def _enum(service: str, shape: str) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    return set(model.shape_for(shape).enum)


def test_predefined_metric_types_are_the_apis() -> None:
    metric_types = _enum("application-autoscaling", "MetricType")
    for name in (
        NAMES.concurrency_per_copy,
        NAMES.concurrency_per_model,
        NAMES.invocations_per_copy,
        NAMES.invocations_per_instance,
    ):
        assert name in metric_types


def test_scalable_dimensions_and_namespace_are_the_apis() -> None:
    dimensions = _enum("application-autoscaling", "ScalableDimension")
    assert NAMES.copy_count in dimensions
    assert NAMES.instance_count in dimensions
    assert NAMES.service_namespace in _enum("application-autoscaling", "ServiceNamespace")


def test_routing_strategies_are_the_apis() -> None:
    assert _enum("sagemaker", "RoutingStrategy") >= NAMES.routing_strategies


def test_every_hosting_instance_is_a_production_variant_instance_type() -> None:
    offered = _enum("sagemaker", "ProductionVariantInstanceType")
    for machines in SAGEMAKER.machines.values():
        for size in machines.sizes:
            assert size.name in offered, size.name


# The page's figures for ml.g6, ml.g6e, ml.p4de and ml.p5 were not found (searched 2026-12-07,
# see sagemaker-prices.json's source): those four are EC2's list price times the hosting ratio of
# the three read ones, and every price shown for them says so.
def test_estimated_hosting_prices_are_ec2_times_the_ratio_and_say_so() -> None:
    table = default_price_table()
    estimates = table.estimates["sagemaker"]
    assert set(estimates) == {
        "ml.g6.xlarge",
        "ml.g6e.xlarge",
        "ml.p4de.24xlarge",
        "ml.p5.48xlarge",
    }
    for name in estimates:
        ec2 = table.instances["aws"][name.removeprefix("ml.")]["on_demand"]
        assert table.instances["sagemaker"][name]["on_demand"] == pytest.approx(ec2 * 1.4, abs=5e-4)
    ratios = [
        table.instances["sagemaker"][f"ml.{name}"]["on_demand"]
        / table.instances["aws"][name]["on_demand"]
        for name in ("g4dn.xlarge", "g5.xlarge", "p4d.24xlarge")
    ]
    assert all(1.3 < ratio < 1.75 for ratio in ratios), ratios
    price = machine_price("nvidia-l4", "sagemaker")
    assert price.instance_type == "ml.g6.xlarge"
    assert "estimated: EC2 g6.xlarge $0.805 x 1.4" in price.source
    assert "not the list price" in price.source
    assert "list price as of" in machine_price("nvidia-a10g", "sagemaker").source


def test_every_gpu_has_a_dated_hosting_price() -> None:
    table = default_price_table()
    assert table.cloud_as_of["sagemaker"] == "2025-10-01"
    for machines in SAGEMAKER.machines.values():
        listed = table.instances["sagemaker"][machines.priced.name]
        assert listed["gpus"] == machines.priced.gpus
        assert "spot" not in listed  # hosting sells none


# https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html, "SageMaker AI
# endpoint invocation metrics" (namespace AWS/SageMaker): "NoCapacityInvocationFailures: The
# number of InvokeEndpoint requests sent to an inference component ... that failed because
# there were no copies"; dimensions InferenceComponentName / EndpointName, VariantName.
# https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-monitor.html, "Asynchronous
# inference metrics" (namespace AWS/SageMaker, dimension EndpointName):
# ApproximateBacklogSizePerInstance, HasBacklogWithoutCapacity.
# Same monitoring page, "SageMaker AI endpoint instance metrics" (namespace
# /aws/sagemaker/Endpoints): CPUUtilization, MemoryUtilization, GPUUtilization,
# GPUMemoryUtilization.
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (NAMES.metric_namespace, "AWS/SageMaker"),
        (NAMES.utilisation_namespace, "/aws/sagemaker/Endpoints"),
        (NAMES.no_capacity_failures, "NoCapacityInvocationFailures"),
        (NAMES.backlog_per_instance, "ApproximateBacklogSizePerInstance"),
        (NAMES.backlog_without_capacity, "HasBacklogWithoutCapacity"),
        (NAMES.inference_component_dimension, "InferenceComponentName"),
        (NAMES.endpoint_dimension, "EndpointName"),
        (NAMES.variant_dimension, "VariantName"),
    ],
)
def test_cloudwatch_names_are_the_documented_ones(name: str, expected: str) -> None:
    assert name == expected


def test_utilisation_metrics_are_the_documented_instance_metrics() -> None:
    assert {"CPUUtilization", "GPUUtilization"} <= NAMES.utilisation_metrics


# "Scale an endpoint to zero instances" and "Autoscale an asynchronous endpoint": the
# register-scalable-target commands use --resource-id inference-component/<name> and
# endpoint/<endpoint>/variant/<variant>.
def test_resource_ids_are_the_documented_forms() -> None:
    assert inference_component_resource_id("ic") == "inference-component/ic"
    assert variant_resource_id("ep", "AllTraffic") == "endpoint/ep/variant/AllTraffic"


# Target tracking's managed alarms. The scale-in threshold: "How target tracking scaling for
# Application Auto Scaling works"
# (https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html):
# capacity is removed "only when utilization passes a threshold that is far enough below the
# target value (usually more than 10% lower)". The periods: "Create a target tracking policy
# using high-resolution metrics" (https://docs.aws.amazon.com/autoscaling/ec2/userguide/
# policy-creating-high-resolution-metrics.html): "Currently the lowest supported interval is 10
# seconds"; standard CloudWatch metrics are per minute. The datapoint counts are UNVERIFIED: no
# AWS page found states them (searched 2026-12-07: the pages above, the Application Auto Scaling
# user guide's source, SageMaker's scaling pages and launch post); 3 and 15 are what users read
# off the managed alarms ("3 datapoints within 3 minutes", "15 datapoints within 15 minutes").
def test_target_tracking_alarms_are_the_documented_and_observed_ones() -> None:
    alarms = target_tracking_alarms()
    assert alarms.scale_in_fraction <= 0.9
    assert alarms.high_resolution_period_s == 10
    assert alarms.standard_period_s == 60
    assert (alarms.high_datapoints, alarms.low_datapoints) == (3, 15)
    assert "UNVERIFIED" in (type(alarms).__doc__ or "")
