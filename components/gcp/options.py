"""What the GCP target needs besides the spec: which project and cluster, and how to name things.

`inferstack:gcp` in the stack config. The spec says what to serve; these options say where: the
project (and its number, which names the Pub/Sub service agent and the Workload Identity
principals), the region, the existing GKE Standard cluster, and the few choices the issue leaves
to the team (results bucket, identity style). Every problem is reported at once, with the option
and the fix, before any resource exists. Kept free of Pulumi imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal

from inferstack.errors import Problem, SpecError

IdentityMode = Literal["principal", "service_account"]
"""`principal`: IAM bindings name the Kubernetes service account itself (Workload Identity
Federation for GKE); `service_account`: one Google service account per pool, impersonated by the
Kubernetes service account (the older style, for org policies that forbid principal members)."""

DEFAULT_RESULTS_EXPIRY_DAYS: Final = 30
DEFAULT_MAX_DELIVERY_ATTEMPTS: Final = 5
MIN_DELIVERY_ATTEMPTS: Final = 5
MAX_DELIVERY_ATTEMPTS: Final = 100
"""Pub/Sub's bounds for `deadLetterPolicy.maxDeliveryAttempts`."""
DEFAULT_KEEP_IMAGES: Final = 10
DEFAULT_KEDA_SERVICE_ACCOUNT: Final = "keda/keda-operator"
"""The KEDA operator's Kubernetes service account (the Helm chart's default): its
`podIdentity.provider: gcp` reads Managed Prometheus as this identity."""

_PROJECT_ID: Final = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_PROJECT_NUMBER: Final = re.compile(r"^[0-9]{6,20}$")
_REGION: Final = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
_ZONE: Final = re.compile(r"^[a-z]+-[a-z]+[0-9]-[a-z]$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_K8S_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class GcpOptions:
    """Settings of a `GcpInferenceStack`: required where GCP cannot guess, safe defaults else."""

    project: str = ""
    """Project ID that holds the cluster, the queue, the bucket and the registry."""
    project_number: str = ""
    """The project's number (`gcloud projects describe PROJECT --format='value(projectNumber)'`):
    it names the Pub/Sub service agent and the Workload Identity principals."""
    region: str = ""
    """Region of the bucket, the registry and (unless `cluster_location` says otherwise) the
    cluster, e.g. us-central1."""
    cluster: str = ""
    """Name of the existing GKE Standard cluster (Workload Identity enabled)."""
    cluster_location: str | None = None
    """The cluster's region or zone; None: `region` (a regional cluster)."""
    node_locations: list[str] = field(default_factory=list)
    """Zones of the GPU node pools; empty: the cluster's own. L4 is not offered in every zone."""
    identity: IdentityMode = "principal"
    keda_service_account: str = DEFAULT_KEDA_SERVICE_ACCOUNT
    """`namespace/name` of the KEDA operator's Kubernetes service account."""
    results_bucket: str | None = None
    """Bucket for the batch results; None: `<project>-<service>-results`, created here."""
    create_results_bucket: bool = True
    """False: `results_bucket` exists already; only the worker's prefix binding is created."""
    results_prefix: str | None = None
    """Object prefix of this service's results; None: the service name."""
    results_expiry_days: int = DEFAULT_RESULTS_EXPIRY_DAYS
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    """Deliveries of one message before Pub/Sub forwards it to the dead-letter topic."""
    create_registry: bool = True
    """Create an Artifact Registry docker repository for the runtime image."""
    keep_images: int = DEFAULT_KEEP_IMAGES
    """Most recent image versions the registry's cleanup policy keeps."""

    @property
    def location(self) -> str:
        """Where the cluster (and so its node pools) lives."""
        return self.cluster_location or self.region

    @property
    def workload_pool(self) -> str:
        """The cluster's Workload Identity pool: always `<project>.svc.id.goog` on GKE."""
        return f"{self.project}.svc.id.goog"

    def problems(self, source: str = "inferstack:gcp") -> list[Problem]:
        """Everything wrong with these options, each naming the option and the fix."""
        problems: list[Problem] = []

        def bad(key: str, message: str) -> None:
            problems.append(Problem(f"{source}.{key}", message))

        if not _PROJECT_ID.match(self.project):
            bad("project", "set the project ID (6-30 lowercase letters, digits, hyphens)")
        if not _PROJECT_NUMBER.match(self.project_number):
            bad(
                "project_number",
                "set the project's number (digits); find it with gcloud projects describe "
                "PROJECT --format='value(projectNumber)'",
            )
        if not _REGION.match(self.region):
            bad("region", "set a GCP region, e.g. us-central1")
        if not _K8S_NAME.match(self.cluster):
            bad("cluster", "set the name of the existing GKE Standard cluster")
        location = self.cluster_location
        if location is not None and not (_REGION.match(location) or _ZONE.match(location)):
            bad("cluster_location", "set the cluster's region or zone, e.g. us-central1-a")
        for zone in self.node_locations:
            if not _ZONE.match(zone) or (self.region and not zone.startswith(self.region + "-")):
                bad(
                    "node_locations",
                    f"{zone!r} is not a zone of {self.region or 'the region'}; "
                    f"use e.g. {self.region or 'us-central1'}-a",
                )
        namespace, slash, name = self.keda_service_account.partition("/")
        if not slash or not _K8S_NAME.match(namespace) or not _K8S_NAME.match(name):
            bad("keda_service_account", "use namespace/name, e.g. keda/keda-operator")
        if self.results_bucket is not None and not _BUCKET.match(self.results_bucket):
            bad("results_bucket", "use a valid bucket name (3-63 lowercase letters, digits, -_.)")
        if not self.create_results_bucket and self.results_bucket is None:
            bad(
                "results_bucket",
                "create_results_bucket is false, so name the existing bucket here, or set "
                "create_results_bucket to true",
            )
        if self.results_prefix is not None and (
            not self.results_prefix.strip("/") or self.results_prefix != self.results_prefix.strip()
        ):
            bad("results_prefix", "use a non-empty object prefix without spaces, e.g. embedder")
        if not 1 <= self.results_expiry_days <= 3650:
            bad("results_expiry_days", "use 1 to 3650 days")
        if not MIN_DELIVERY_ATTEMPTS <= self.max_delivery_attempts <= MAX_DELIVERY_ATTEMPTS:
            bad(
                "max_delivery_attempts",
                f"Pub/Sub accepts {MIN_DELIVERY_ATTEMPTS} to {MAX_DELIVERY_ATTEMPTS} attempts",
            )
        if not 1 <= self.keep_images <= 1000:
            bad("keep_images", "keep 1 to 1000 image versions")
        return problems


def parse_gcp_options(data: Mapping[str, Any] | None, *, source: str) -> GcpOptions:
    """Options from a config mapping (`inferstack:gcp`); unknown keys and bad values are errors."""
    data = dict(data or {})
    known = {f.name for f in fields(GcpOptions)}
    problems = [
        Problem(f"{source}.{key}", f"unknown option; known options are {', '.join(sorted(known))}")
        for key in data
        if key not in known
    ]
    values = {key: value for key, value in data.items() if key in known}
    for key in ("project_number",):
        if isinstance(values.get(key), int):
            values[key] = str(values[key])
    if "identity" in values and values["identity"] not in ("principal", "service_account"):
        problems.append(
            Problem(f"{source}.identity", "use principal (the default) or service_account")
        )
        values.pop("identity")
    if "node_locations" in values and not isinstance(values["node_locations"], list):
        problems.append(Problem(f"{source}.node_locations", "expected a list of zones"))
        values.pop("node_locations")
    options = GcpOptions(**values)
    problems += options.problems(source)
    if problems:
        raise SpecError(problems, source=source)
    return options


__all__ = ["GcpOptions", "IdentityMode", "parse_gcp_options"]
