"""One table per cloud: spot notice and labels, the machines that carry each GPU, the price key.

Everything that differs between AWS and GCP for planning lives here, so sizing, pricing, the
cloud components and the simulator read one answer. Adding a cloud is one more `Cloud` entry
(plus its component); no other planning module branches on a cloud's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from inferstack.contract.clouds import (
    GKE_SPOT,
    INTERRUPTION_NOTICE_SECONDS,
    KARPENTER_CAPACITY_TYPE,
    SPOT_LABELS,
    SpotLabel,
)

CloudName = Literal["aws", "gcp", "sagemaker", "cloudrun"]
Target = Literal["kubernetes", "aws", "gcp", "sagemaker", "cloudrun"]
"""Where a stack runs: any Kubernetes cluster, a cloud whose capacity inferstack creates, or
SageMaker's managed endpoints, or Cloud Run's serverless GPUs."""


@dataclass(frozen=True)
class MachineSize:
    """One machine type and how many of the GPU it carries."""

    name: str
    gpus: int


@dataclass(frozen=True)
class Machines:
    """The machines of one cloud that carry one GPU type.

    The first size is the one the price table lists; node pools may use any size whose GPU count
    fits a replica, so that spot capacity can be found in more than one pool.
    """

    family: str
    """Instance family (EC2, e.g. `g6`) or machine series (GCE, e.g. `g2`)."""
    sizes: tuple[MachineSize, ...]
    accelerator: str | None = None
    """The accelerator type a node pool names (GCE); None where the machine implies it (EC2)."""

    @property
    def priced(self) -> MachineSize:
        """The machine the price table lists for this GPU."""
        return self.sizes[0]

    def fitting(self, gpus_per_replica: int) -> tuple[MachineSize, ...]:
        """Sizes that hold at least one replica of `gpus_per_replica` GPUs."""
        return tuple(size for size in self.sizes if size.gpus >= gpus_per_replica)


@dataclass(frozen=True)
class Cloud:
    """What planning needs to know about one cloud."""

    name: CloudName
    title: str
    spot_notice_seconds: int
    """Time between the spot interruption notice and the machine's stop."""
    spot_labels: tuple[SpotLabel, ...]
    """Node labels that mark this cloud's spot capacity (see `inferstack.contract.clouds`)."""
    capacity_type_label: str
    """The node label that tells spot from on-demand on the capacity inferstack creates."""
    machines: Mapping[str, Machines]
    """By the spec's GPU name; a GPU this cloud does not offer is absent."""
    price_stand_ins: Mapping[str, str] = field(default_factory=dict)
    """GPU -> the GPU whose machine prices it when this cloud lacks it (plain Kubernetes only)."""
    regions: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Machine family -> the regions that offer it; a family absent here is not checked."""
    node_pool_label: str | None = None
    """The label the platform puts on every node with its pool's name (pods select a pool by it)."""
    gpu_driver_version: str | None = None
    """The driver the platform installs on GPU nodes it creates (GKE); None: the image has it."""
    offers_spot: bool = True
    """False where the platform sells no spot capacity (SageMaker hosting): no spot lever."""
    queue_workers_fixed: bool = False
    """True where queue work runs at a fixed count billed around the clock (Cloud Run worker
    pools scale only manually): the cost formula prices that count, not the busy hours."""

    def machines_for(self, gpu: str) -> Machines | None:
        """The machines that carry `gpu`, or None when this cloud offers no such GPU."""
        return self.machines.get(gpu)

    def offers(self, family: str, region: str) -> bool:
        """Whether `region` offers the machine `family` (True when the table has no entry)."""
        return family not in self.regions or region in self.regions[family]

    def regions_of(self, family: str) -> frozenset[str]:
        """The regions the table lists for `family` (empty when it lists none)."""
        return self.regions.get(family, frozenset())


def _sizes(family: str, *sizes: tuple[str, int]) -> tuple[MachineSize, ...]:
    return tuple(MachineSize(f"{family}.{size}", gpus) for size, gpus in sizes)


_SINGLE_GPU_EC2 = (("xlarge", 1), ("2xlarge", 1), ("4xlarge", 1), ("8xlarge", 1), ("16xlarge", 1))
_MULTI_GPU_EC2 = (("12xlarge", 4), ("24xlarge", 4), ("48xlarge", 8))


def _ec2(family: str, *sizes: tuple[str, int]) -> Machines:
    return Machines(family, _sizes(family, *sizes))


def _gce(series: str, accelerator: str, *sizes: tuple[str, int]) -> Machines:
    return Machines(
        series, tuple(MachineSize(f"{series}-{s}", gpus) for s, gpus in sizes), accelerator
    )


_US = ("us-east-1", "us-east-2", "us-west-2")
_EC2_REGIONS: Final[Mapping[str, frozenset[str]]] = {
    "g4dn": frozenset(
        (
            *_US,
            "us-west-1",
            "ca-central-1",
            "sa-east-1",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-central-1",
            "eu-north-1",
            "eu-south-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-south-1",
        )
    ),
    "g5": frozenset(
        (
            *_US,
            "ca-central-1",
            "sa-east-1",
            "eu-west-1",
            "eu-west-2",
            "eu-central-1",
            "eu-north-1",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-south-1",
        )
    ),
    "g6": frozenset(
        (
            *_US,
            "ca-central-1",
            "sa-east-1",
            "eu-west-2",
            "eu-central-1",
            "eu-north-1",
            "eu-south-2",
            "ap-northeast-1",
            "ap-south-1",
        )
    ),
    "g6e": frozenset((*_US, "eu-north-1", "eu-south-2", "ap-northeast-1")),
    "p4d": frozenset(
        (*_US, "eu-west-1", "eu-central-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1")
    ),
    "p4de": frozenset(("us-east-1", "us-west-2")),
    "p5": frozenset((*_US, "eu-north-1", "ap-northeast-1", "ap-south-1")),
}
"""Regions that offer each EC2 GPU family, kept conservative (a region listed here offers the
family in at least one zone, per `aws ec2 describe-instance-type-offerings --location-type
region`, as of 2025-07). A region missing here is refused with the list; check it with that
command and add it."""

AWS: Final = Cloud(
    name="aws",
    title="AWS",
    spot_notice_seconds=INTERRUPTION_NOTICE_SECONDS["aws"],
    spot_labels=tuple(label for label in SPOT_LABELS if label.provider == "aws"),
    capacity_type_label=KARPENTER_CAPACITY_TYPE,
    machines={
        "nvidia-t4": _ec2("g4dn", *_SINGLE_GPU_EC2, ("12xlarge", 4), ("metal", 8)),
        "nvidia-a10g": _ec2("g5", *_SINGLE_GPU_EC2, *_MULTI_GPU_EC2),
        "nvidia-l4": _ec2("g6", *_SINGLE_GPU_EC2, *_MULTI_GPU_EC2),
        "nvidia-l40s": _ec2("g6e", *_SINGLE_GPU_EC2, *_MULTI_GPU_EC2),
        "nvidia-a100-40gb": _ec2("p4d", ("24xlarge", 8)),
        "nvidia-a100-80gb": _ec2("p4de", ("24xlarge", 8)),
        "nvidia-h100-80gb": _ec2("p5", ("48xlarge", 8)),
    },
    regions=_EC2_REGIONS,
)
"""EC2 GPU instances (the families the AWS issue names: L4 g6, A10G g5, L40S g6e, T4 g4dn, A100
p4d/p4de, H100 p5). Spot notice: two minutes."""

GCP: Final = Cloud(
    name="gcp",
    title="GCP",
    spot_notice_seconds=INTERRUPTION_NOTICE_SECONDS["gcp"],
    spot_labels=tuple(label for label in SPOT_LABELS if label.provider == "gcp"),
    capacity_type_label=GKE_SPOT,
    machines={
        "nvidia-t4": _gce("n1", "nvidia-tesla-t4", ("standard-8", 1), ("standard-16", 2)),
        "nvidia-l4": _gce(
            "g2",
            "nvidia-l4",
            ("standard-8", 1),
            ("standard-4", 1),
            ("standard-12", 1),
            ("standard-16", 1),
            ("standard-32", 1),
            ("standard-24", 2),
            ("standard-48", 4),
            ("standard-96", 8),
        ),
        "nvidia-a100-40gb": _gce(
            "a2", "nvidia-tesla-a100", ("highgpu-1g", 1), ("highgpu-2g", 2), ("highgpu-4g", 4)
        ),
        "nvidia-a100-80gb": _gce(
            "a2", "nvidia-a100-80gb", ("ultragpu-1g", 1), ("ultragpu-2g", 2), ("ultragpu-4g", 4)
        ),
        "nvidia-h100-80gb": _gce(
            "a3", "nvidia-h100-80gb", ("highgpu-1g", 1), ("highgpu-2g", 2), ("highgpu-4g", 4)
        ),
    },
    price_stand_ins={"nvidia-a10g": "nvidia-l4", "nvidia-l40s": "nvidia-l4"},
    node_pool_label="cloud.google.com/gke-nodepool",
    gpu_driver_version="LATEST",
)
"""GCE accelerator-optimized and N1 machines. A10G and L40S have no GCE twin: a GKE target refuses
them, and a plain Kubernetes stack priced on GCP prices them as L4 (and says so). The priced L4
machine is g2-standard-8, as in the shipped price table. Spot notice: 30 seconds."""

SAGEMAKER: Final = Cloud(
    name="sagemaker",
    title="SageMaker",
    spot_notice_seconds=0,
    spot_labels=(),
    capacity_type_label="",
    machines={
        "nvidia-t4": _ec2("ml.g4dn", *_SINGLE_GPU_EC2, ("12xlarge", 4)),
        "nvidia-a10g": _ec2("ml.g5", *_SINGLE_GPU_EC2, *_MULTI_GPU_EC2),
        "nvidia-l4": _ec2("ml.g6", *_SINGLE_GPU_EC2, *_MULTI_GPU_EC2),
        "nvidia-l40s": _ec2("ml.g6e", *_SINGLE_GPU_EC2, *_MULTI_GPU_EC2),
        "nvidia-a100-40gb": _ec2("ml.p4d", ("24xlarge", 8)),
        "nvidia-a100-80gb": _ec2("ml.p4de", ("24xlarge", 8)),
        "nvidia-h100-80gb": _ec2("ml.p5", ("48xlarge", 8)),
    },
    offers_spot=False,
)
"""SageMaker hosting instances (`ml.` + the EC2 name; the hosting API's
ProductionVariantInstanceType lists each, tested). Hosting sells no spot capacity (managed spot
is for training jobs only), so a SageMaker plan has no spot lever and no interruption notice."""

CLOUDRUN_L4_INSTANCE: Final = "nvidia-l4-4cpu-16gib"
"""The priced Cloud Run GPU instance: one L4 with the least CPU and memory Cloud Run allows beside
it (4 vCPU, 16 GiB; https://cloud.google.com/run/docs/configuring/services/gpu)."""

CLOUDRUN: Final = Cloud(
    name="cloudrun",
    title="Cloud Run",
    spot_notice_seconds=0,
    spot_labels=(),
    capacity_type_label="",
    machines={
        "nvidia-l4": Machines("cloudrun-l4", (MachineSize(CLOUDRUN_L4_INSTANCE, 1),), "nvidia-l4")
    },
    regions={
        "cloudrun-l4": frozenset(
            ("us-central1", "us-east4", "europe-west1", "europe-west4", "asia-southeast1")
        )
    },
    offers_spot=False,
    queue_workers_fixed=True,
)
"""Cloud Run instances with a GPU: one L4 per instance (the only GPU of the spec's list Cloud Run
offers), priced per second with instance-based billing (`prices/cloudrun-prices.json`). Cloud Run
sells no spot capacity, so a Cloud Run plan has no spot lever and no interruption notice. The
regions are those the GPU page lists for L4 (asia-south1 by invitation only, left out)."""

CLOUDS: Final[Mapping[CloudName, Cloud]] = {
    "aws": AWS,
    "gcp": GCP,
    "sagemaker": SAGEMAKER,
    "cloudrun": CLOUDRUN,
}


def spot_notice(target: Target) -> tuple[int, str]:
    """The interruption notice the batch pool must drain within, and whose it is.

    A plain Kubernetes cluster may sit on any cloud, so it gets the shortest notice of all.
    """
    if target != "kubernetes" and CLOUDS[target].offers_spot:
        cloud = CLOUDS[target]
        return cloud.spot_notice_seconds, f"the {cloud.title} spot notice"
    spot = [cloud for cloud in CLOUDS.values() if cloud.offers_spot]
    shortest = min(spot, key=lambda cloud: cloud.spot_notice_seconds)
    titles = " and ".join(cloud.title for cloud in spot)
    return shortest.spot_notice_seconds, f"the shortest spot notice of {titles}"
