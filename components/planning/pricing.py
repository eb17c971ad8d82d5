"""GPU machine prices: a dated public list-price table, overridable per spec.

The table ships as data (`prices/gpu-prices.json`) with its date and source, because prices move
and a cost estimate is only as honest as the number it multiplies. SageMaker hosting has its own
list (`prices/sagemaker-prices.json`, ml.* instances, its own date and source, no spot column:
hosting sells none), merged in as the `sagemaker` cloud. Cloud Run bills per second by resource
(`prices/cloudrun-prices.json`: the GPU, vCPU and GiB rates with instance-based billing); each
priced instance shape's hour is the sum of its resources' per-second rates, zonal redundancy off
(the Cloud Run target's default), merged in as the `cloudrun` cloud.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from inferstack.components.planning.clouds import CLOUDS, CloudName

Cloud = CloudName


@dataclass(frozen=True)
class MachinePrice:
    """What one GPU of a given type costs per hour on one cloud, and where the figure comes from."""

    cloud: Cloud
    instance_type: str
    gpus_per_instance: int
    on_demand_per_gpu_hour: float
    spot_per_gpu_hour: float
    source: str


@dataclass(frozen=True)
class PriceTable:
    """The dated list-price table: `instances[cloud][instance_type] = {gpus, on_demand, spot}`."""

    as_of: str
    source: str
    instances: dict[str, dict[str, dict[str, float]]]
    cloud_as_of: dict[str, str] = field(default_factory=dict)
    """Cloud -> the date of its own price list, where it is not `as_of` (SageMaker's)."""
    estimates: dict[str, dict[str, str]] = field(default_factory=dict)
    """Cloud -> instance type -> how its price was estimated, where it is not a list price read
    from the provider's page (SageMaker's ml.g6, g6e, p4de, p5: EC2's price times a ratio)."""


def _read(name: str) -> dict[str, Any]:
    text = resources.files("inferstack.components.planning").joinpath(f"prices/{name}").read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


SECONDS_PER_HOUR = 3600


def cloudrun_hourly(raw: dict[str, Any], *, zonal_redundancy: bool = False) -> dict[str, float]:
    """Instance name -> the hour of a Cloud Run GPU instance (GPU + vCPU + memory, per second)."""
    rates = raw["per_second"]
    key = "zonal_redundancy_on" if zonal_redundancy else "zonal_redundancy_off"
    return {
        name: SECONDS_PER_HOUR
        * (
            shape["gpus"] * rates["gpu"][shape["gpu"]][key]
            + shape["vcpu"] * rates["vcpu"]
            + shape["gib"] * rates["gib"]
        )
        for name, shape in raw["instances"].items()
    }


@cache
def default_price_table() -> PriceTable:
    """The table shipped with the package."""
    raw, sagemaker = _read("gpu-prices.json"), _read("sagemaker-prices.json")
    cloudrun = _read("cloudrun-prices.json")
    cloudrun_instances = {
        name: {"gpus": float(cloudrun["instances"][name]["gpus"]), "on_demand": hourly}
        for name, hourly in cloudrun_hourly(cloudrun).items()
    }
    return PriceTable(
        as_of=raw["as_of"],
        source=(
            f"{raw['source']} SageMaker: {sagemaker['source']} Cloud Run: {cloudrun['source']}"
        ),
        instances={
            **raw["instances"],
            "sagemaker": sagemaker["instances"],
            "cloudrun": cloudrun_instances,
        },
        cloud_as_of={"sagemaker": sagemaker["as_of"], "cloudrun": cloudrun["as_of"]},
        estimates={"sagemaker": _estimates(sagemaker, raw)},
    )


def _estimates(hosting: dict[str, Any], raw: dict[str, Any]) -> dict[str, str]:
    """Instance type -> how its hosting price was estimated (EC2's list price times a ratio)."""
    estimated: dict[str, dict[str, Any]] = hosting.get("estimated", {})
    return {
        name: f"estimated: EC2 {how['ec2']} ${_ec2_price(raw, how['ec2']):g} x {how['ratio']:g}"
        for name, how in estimated.items()
    }


def _ec2_price(raw: dict[str, Any], instance: str) -> float:
    price: float = raw["instances"]["aws"][instance]["on_demand"]
    return price


def machine_price(
    gpu: str,
    cloud: Cloud,
    overrides: dict[str, dict[str, float]] | None = None,
    table: PriceTable | None = None,
) -> MachinePrice:
    """Per-GPU hourly price for `gpu` on `cloud`; `overrides` maps instance type to prices."""
    table = table or default_price_table()
    provider = CLOUDS[cloud]
    machines = provider.machines_for(gpu) or provider.machines_for(provider.price_stand_ins[gpu])
    assert machines is not None  # noqa: S101 (every GPU is offered or has a stand-in: tested)
    instance = machines.priced.name
    listed = dict(table.instances[cloud][instance])
    as_of = table.cloud_as_of.get(cloud, table.as_of)
    estimate = table.estimates.get(cloud, {}).get(instance)
    source = f"{cloud} {instance} list price as of {as_of}"
    if estimate is not None:
        # Say so wherever the price is shown: a guess read as a list price misleads the cost.
        source = f"{cloud} {instance} price {estimate}, not the list price (as of {as_of})"
    if overrides and instance in overrides:
        listed.update(overrides[instance])
        source = f"{cloud} {instance} price from the spec's `prices` override"
    gpus = int(listed.get("gpus", 1))
    return MachinePrice(
        cloud=cloud,
        instance_type=instance,
        gpus_per_instance=gpus,
        on_demand_per_gpu_hour=listed["on_demand"] / gpus,
        # No spot market (SageMaker hosting): the spot price is the on-demand one.
        spot_per_gpu_hour=listed.get("spot", listed["on_demand"]) / gpus,
        source=source,
    )
