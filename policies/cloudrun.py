"""What the Cloud Run rules share: reading raw `gcp:cloudrunv2/*` resources (wire names).

A GPU service or worker pool is one whose template selects an accelerator or whose container
limits `nvidia.com/gpu`; the strings come from `inferstack.contract.cloudrun`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from inferstack.contract.cloudrun import cloud_run_names
from inferstack.contract.env import env_name
from inferstack.policies.resources import Resource, as_number, list_of, mapping_of

SERVICE: Final = "gcp:cloudrunv2/service:Service"
WORKER_POOL: Final = "gcp:cloudrunv2/workerPool:WorkerPool"
SERVICE_IAM_MEMBER: Final = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
SERVICE_IAM_BINDING: Final = "gcp:cloudrunv2/serviceIamBinding:ServiceIamBinding"
NAMES: Final = cloud_run_names()
PUBLIC_MEMBERS: Final = frozenset((NAMES.public_member, "allAuthenticatedUsers"))
MAX_BATCH_ENV: Final = env_name("max_batch_size")


def containers(resource: Resource) -> Iterator[Mapping[str, Any]]:
    """The template's containers."""
    for item in list_of(mapping_of(resource.get("template")).get("containers")):
        yield mapping_of(item)


def has_gpu(resource: Resource) -> bool:
    """Whether a service or worker pool runs on a GPU."""
    template = mapping_of(resource.get("template"))
    if mapping_of(template.get("nodeSelector")).get("accelerator"):
        return True
    return any(
        NAMES.gpu_limit in mapping_of(mapping_of(c.get("resources")).get("limits"))
        for c in containers(resource)
    )


def gpu_services(resources: Sequence[Resource]) -> list[Resource]:
    """The Cloud Run services that run on a GPU."""
    return [r for r in resources if r.type == SERVICE and has_gpu(r)]


def max_batch_size(resource: Resource) -> float | None:
    """The largest batch a container's runtime forms (its INFERSTACK_MAX_BATCH_SIZE), if set."""
    sizes = [
        as_number(mapping_of(env).get("value"))
        for c in containers(resource)
        for env in list_of(c.get("envs"))
        if mapping_of(env).get("name") == MAX_BATCH_ENV
    ]
    known = [size for size in sizes if size is not None]
    return max(known) if known else None


__all__ = [
    "NAMES",
    "PUBLIC_MEMBERS",
    "SERVICE",
    "SERVICE_IAM_BINDING",
    "SERVICE_IAM_MEMBER",
    "WORKER_POOL",
    "containers",
    "gpu_services",
    "has_gpu",
    "max_batch_size",
]
