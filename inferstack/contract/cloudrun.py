"""Every string Cloud Run, Cloud Scheduler and IAM interpret for this target, from one function.

Each value is quoted from Google's documentation (tests/components/cloudrun/test_names.py checks
them against the pages, cited there and here):
- GPU services: the accelerator node selector values and the `nvidia.com/gpu` limit, the least
  CPU (4) and memory (16 GiB) beside an L4, CPU always allocated, zonal redundancy off
  ("Configure GPUs for services", https://cloud.google.com/run/docs/configuring/services/gpu;
  "GPU zonal redundancy", https://cloud.google.com/run/docs/configuring/services/gpu-zonal-redundancy);
- ingress settings (`INGRESS_TRAFFIC_*`, the v2 API's `IngressTraffic` enum,
  https://cloud.google.com/run/docs/reference/rest/v2/projects.locations.services);
- the invoker role and the public principal ("Allowing public (unauthenticated) access",
  https://cloud.google.com/run/docs/authenticating/public; "Cloud Run IAM roles",
  https://cloud.google.com/run/docs/reference/iam/roles);
- the permissions of the pre-warm identity's custom role (`run.services.get`,
  `run.services.update`; "Cloud Run IAM permissions",
  https://cloud.google.com/run/docs/reference/iam/permissions) and the Admin API's service
  resource with its `scaling.minInstanceCount` update mask ("Minimum instances for services",
  https://cloud.google.com/run/docs/configuring/min-instances; v2 `ServiceScaling`);
- the Cloud Run service agent that pulls images ("Deploying container images from other
  projects" / "Cloud Run service agent",
  https://cloud.google.com/run/docs/deploying#other-projects);
- Cloud Scheduler's OAuth scope for a googleapis.com target ("Use authentication with HTTP
  targets", https://cloud.google.com/scheduler/docs/http-target-auth);
- worker pools' manual scaling ("Manual scaling for worker pools",
  https://cloud.google.com/run/docs/configuring/workerpools/manual-scaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from inferstack.contract.pods import GPU_RESOURCE


@dataclass(frozen=True)
class CloudRunNames:
    """The strings Cloud Run, Cloud Scheduler and IAM read, as the docs spell them."""

    accelerators: dict[str, str]
    """The spec's GPU name -> the `nodeSelector.accelerator` value Cloud Run accepts."""
    gpu_limit: str
    """The resource limit key of a GPU container."""
    min_cpu_with_gpu: dict[str, int]
    min_memory_gib_with_gpu: dict[str, int]
    ingress: dict[str, str]
    """The options' `ingress` -> the v2 API's `IngressTraffic` value."""
    service_agent: str
    """The Cloud Run service agent (pulls the image), `{number}` the project number."""
    invoker_role: str
    public_member: str
    prewarm_permissions: tuple[str, ...]
    """What the pre-warm identity's custom role holds: read and update this service."""
    service_account_user_role: str
    """actAs on the runtime identity, which an update of the service needs."""
    admin_api: str
    """The Cloud Run Admin API v2 root (`{root}/projects/P/locations/L/services/S`)."""
    min_instances_mask: str
    """The update mask of the service-level minimum instances (no new revision)."""
    scheduler_scope: str
    """The OAuth scope of Cloud Scheduler's token for a Google API target."""
    launch_stage_of_worker_pools: str


_NAMES: Final = CloudRunNames(
    accelerators={"nvidia-l4": "nvidia-l4"},
    gpu_limit=GPU_RESOURCE,
    min_cpu_with_gpu={"nvidia-l4": 4},
    min_memory_gib_with_gpu={"nvidia-l4": 16},
    ingress={
        "all": "INGRESS_TRAFFIC_ALL",
        "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
        "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
    },
    service_agent="serviceAccount:service-{number}@serverless-robot-prod.iam.gserviceaccount.com",
    invoker_role="roles/run.invoker",
    public_member="allUsers",
    prewarm_permissions=("run.services.get", "run.services.update"),
    service_account_user_role="roles/iam.serviceAccountUser",
    admin_api="https://run.googleapis.com/v2",
    min_instances_mask="scaling.minInstanceCount",
    scheduler_scope="https://www.googleapis.com/auth/cloud-platform",
    launch_stage_of_worker_pools="BETA",
)


def cloud_run_names() -> CloudRunNames:
    """The one source of the Cloud Run strings (see the module docstring for each page)."""
    return _NAMES


def service_url(project: str, region: str, service: str) -> str:
    """The Admin API address of one service (what the pre-warm jobs PATCH)."""
    return f"{_NAMES.admin_api}/projects/{project}/locations/{region}/services/{service}"


__all__ = ["CloudRunNames", "cloud_run_names", "service_url"]
