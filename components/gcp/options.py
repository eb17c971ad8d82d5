"""What the GCP target needs besides the spec: which project and cluster, and how to name things.

`inferstack:gcp` in the stack config. The spec says what to serve; these options say where: the
project (and its number, which names the Pub/Sub service agent and the Workload Identity
principals), the region, the existing GKE Standard cluster, and the few choices the issue leaves
to the team (results bucket, identity style). Every problem is reported at once, with the option
and the fix, before any resource exists: the values' own checks when they are read
(`parse_gcp_options`), what the target refuses in the spec in `GcpOptions.problems`. Kept free
of Pulumi imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator

from inferstack.components.planning import validation
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel
from inferstack.contract.clouds import GCP_PROJECT_ID
from inferstack.errors import Problem

IdentityMode = Literal["principal", "service_account"]
"""`principal`: IAM bindings name the Kubernetes service account itself (Workload Identity
Federation for GKE); `service_account`: one Google service account per pool, impersonated by the
Kubernetes service account (the older style, for org policies that forbid principal members)."""

CONFIG_KEY: Final = "inferstack:gcp"
"""The stack config key of these options; every problem's path starts with it."""
PoolRole = Literal["realtime", "spot", "fallback"]
MAX_POOL_NAME: Final = 40
"""GKE's limit on a node pool name."""
POOL_SUFFIXES: Final[dict[PoolRole, str]] = {
    "realtime": "realtime",
    "spot": "batch-spot",
    "fallback": "batch-ondemand",
}
"""Each node pool is named `<service>-<suffix>`: the longest decides the service name's limit."""
DEFAULT_RESULTS_EXPIRY_DAYS: Final = 30
DEFAULT_MAX_DELIVERY_ATTEMPTS: Final = 5
MIN_DELIVERY_ATTEMPTS: Final = 5
MAX_DELIVERY_ATTEMPTS: Final = 100
"""Pub/Sub's bounds for `deadLetterPolicy.maxDeliveryAttempts`."""
DEFAULT_KEEP_IMAGES: Final = 10
DEFAULT_KEDA_SERVICE_ACCOUNT: Final = "keda/keda-operator"
"""The KEDA operator's Kubernetes service account (the Helm chart's default): its
`podIdentity.provider: gcp` reads Managed Prometheus as this identity."""

_PROJECT_ID: Final = GCP_PROJECT_ID
_PROJECT_NUMBER: Final = re.compile(r"^[0-9]{6,20}$")
_REGION: Final = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
_ZONE: Final = re.compile(r"^[a-z]+-[a-z]+[0-9]-[a-z]$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_BUCKET_MAX: Final = 63
"""A bucket name's length without dots, and each dot-separated part's with them."""
_GOOGLE_LOOKALIKE: Final = re.compile(r"g[o0][o0]g[l1]e")
_K8S_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class GcpOptions(StrictModel):
    """Settings of a `GcpInferenceStack`: required where GCP cannot guess, safe defaults else."""

    project: str = Field(default="", validate_default=True)
    """Project ID that holds the cluster, the queue, the bucket and the registry."""
    project_number: str = Field(default="", validate_default=True)
    """The project's number (`gcloud projects describe PROJECT --format='value(projectNumber)'`):
    it names the Pub/Sub service agent and the Workload Identity principals."""
    region: str = Field(default="", validate_default=True)
    """Region of the bucket, the registry and (unless `cluster_location` says otherwise) the
    cluster, e.g. us-central1."""
    cluster: str = Field(default="", validate_default=True)
    """Name of the existing GKE Standard cluster (Workload Identity enabled)."""
    cluster_location: str | None = None
    """The cluster's region or zone; None: `region` (a regional cluster)."""
    node_locations: list[str] = Field(default_factory=list)
    """Zones of the GPU node pools; empty: the cluster's own. L4 is not offered in every zone."""
    identity: IdentityMode = "principal"
    """principal: IAM bindings for the worker's Kubernetes service account itself (Workload
    Identity Federation); service_account: one Google service account for the pool."""
    keda_service_account: str = DEFAULT_KEDA_SERVICE_ACCOUNT
    """`namespace/name` of the KEDA operator's Kubernetes service account."""
    create_results_bucket: bool = True
    """False: `results_bucket` exists already; only the worker's prefix binding is created."""
    results_bucket: str | None = Field(default=None, validate_default=True)
    """Bucket for the batch results; None: `<project>-<service>-results`, created here."""
    results_prefix: str | None = None
    """Object prefix of this service's results; None: the service name."""
    results_expiry_days: int = DEFAULT_RESULTS_EXPIRY_DAYS
    """Days after which a result object is deleted."""
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS
    """Deliveries of one message before Pub/Sub forwards it to the dead-letter topic."""
    create_registry: bool = True
    """Create an Artifact Registry docker repository for the runtime image."""
    keep_images: int = DEFAULT_KEEP_IMAGES
    """Most recent image versions the registry's cleanup policy keeps."""

    @field_validator("project_number", mode="before")
    @classmethod
    def _number_as_text(cls, value: Any) -> Any:
        # YAML reads an unquoted project number as an integer.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        return _matching(
            value, _PROJECT_ID, "set the project ID (6-30 lowercase letters, digits, hyphens)"
        )

    @field_validator("project_number")
    @classmethod
    def _project_number(cls, value: str) -> str:
        return _matching(
            value,
            _PROJECT_NUMBER,
            "set the project's number (digits); find it with gcloud projects describe "
            "PROJECT --format='value(projectNumber)'",
        )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _matching(value, _REGION, "set a GCP region, e.g. us-central1")

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return _matching(value, _K8S_NAME, "set the name of the existing GKE Standard cluster")

    @field_validator("cluster_location")
    @classmethod
    def _cluster_location(cls, value: str | None) -> str | None:
        if value is not None and not (_REGION.match(value) or _ZONE.match(value)):
            raise ValueError("set the cluster's region or zone, e.g. us-central1-a")
        return value

    @field_validator("node_locations")
    @classmethod
    def _node_locations(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # A region that failed its own check is not here: only the zones' form is judged then.
        region = info.data.get("region", "")
        wrong = [_zone_problem(zone, region) for zone in value]
        if any(wrong):
            raise ValueError("; ".join(problem for problem in wrong if problem))
        return value

    @field_validator("keda_service_account")
    @classmethod
    def _keda_service_account(cls, value: str) -> str:
        namespace, slash, name = value.partition("/")
        if not slash or not _K8S_NAME.match(namespace) or not _K8S_NAME.match(name):
            raise ValueError("use namespace/name, e.g. keda/keda-operator")
        return value

    @field_validator("results_bucket")
    @classmethod
    def _results_bucket(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("create_results_bucket") is False:
            raise ValueError(
                "create_results_bucket is false, so name the existing bucket here, or set "
                "create_results_bucket to true"
            )
        problem = gcs_bucket_problem(value) if value is not None else ""
        if problem:
            raise ValueError(f"{problem}; name the bucket, or leave it unset")
        return value

    @field_validator("results_prefix")
    @classmethod
    def _results_prefix(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip("/") or value != value.strip()):
            raise ValueError("use a non-empty object prefix without spaces, e.g. embedder")
        return value

    @field_validator("results_expiry_days")
    @classmethod
    def _expiry(cls, value: int) -> int:
        if not 1 <= value <= 3650:
            raise ValueError("use 1 to 3650 days")
        return value

    @field_validator("max_delivery_attempts")
    @classmethod
    def _delivery_attempts(cls, value: int) -> int:
        if not MIN_DELIVERY_ATTEMPTS <= value <= MAX_DELIVERY_ATTEMPTS:
            raise ValueError(
                f"Pub/Sub accepts {MIN_DELIVERY_ATTEMPTS} to {MAX_DELIVERY_ATTEMPTS} attempts"
            )
        return value

    @field_validator("keep_images")
    @classmethod
    def _keep_images(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("keep 1 to 1000 image versions")
        return value

    @property
    def location(self) -> str:
        """Where the cluster (and so its node pools) lives."""
        return self.cluster_location or self.region

    @property
    def workload_pool(self) -> str:
        """The cluster's Workload Identity pool: always `<project>.svc.id.goog` on GKE."""
        return f"{self.project}.svc.id.goog"

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """What this target cannot build for `spec` with these options, each with its fix.

        GPUs GCE lacks are the plan's to refuse (`plan_service` with target gcp).
        """
        problems = name_problems(spec.name)
        if spec.batch is not None and spec.batch.queue.kind != "pubsub":
            problems.append(
                Problem(
                    "batch.queue.kind",
                    f"{spec.batch.queue.kind} is not a GCP queue; use pubsub on the gcp target",
                )
            )
        return problems


def name_problems(service: str) -> list[Problem]:
    """Pool names GKE would refuse (over 40 characters), reported before any resource."""
    longest = max(POOL_SUFFIXES.values(), key=len)
    limit = MAX_POOL_NAME - len(longest) - 1
    if len(service) > limit:
        return [
            Problem(
                "name",
                f"{service!r} makes GKE node pool names over {MAX_POOL_NAME} characters "
                f"(e.g. {service}-{longest}); use a service name of at most {limit} characters",
            )
        ]
    return []


def gcs_bucket_problem(name: str) -> str:
    """Why `name` is not a Cloud Storage bucket name, or "".

    Google Cloud, Cloud Storage "Bucket names" (https://cloud.google.com/storage/docs/buckets#naming):
    lowercase letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit;
    3-63 characters (up to 222 with dots, each dot-separated part at most 63); not an IP address
    in dotted-decimal form; not beginning with `goog`, not containing `google` or a close
    misspelling (`g00gle`). Which project owns an existing bucket is not in its name: that is
    only known at deploy, when the worker's binding on it is created.
    """
    parts = name.split(".")
    if (
        not _BUCKET.match(name)
        or any(not part or len(part) > _BUCKET_MAX for part in parts)
        or ("." not in name and len(name) > _BUCKET_MAX)
    ):
        return (
            f"use a valid bucket name: {name!r} is not one (3-63 lowercase letters, digits, -_., "
            "beginning and ending with a letter or digit; up to 222 with dots, 63 between them)"
        )
    if len(parts) == 4 and all(part.isdigit() for part in parts):
        return f"{name!r} is an IP address, which Cloud Storage refuses as a bucket name"
    if name.startswith("goog") or _GOOGLE_LOOKALIKE.search(name):
        return f"{name!r} begins with goog or contains google, which Cloud Storage reserves"
    return ""


def _zone_problem(zone: str, region: str) -> str:
    if not _ZONE.match(zone):
        return f"{zone!r} is not a zone; use e.g. {region or 'us-central1'}-a"
    if region and not zone.startswith(region + "-"):
        return f"{zone!r} is not a zone of {region}; use e.g. {region}-a"
    return ""


def _matching(value: str, pattern: re.Pattern[str], fix: str) -> str:
    if not pattern.match(value):
        raise ValueError(fix)
    return value


def parse_gcp_options(
    data: Mapping[str, Any] | None, *, source: str, spec: InferenceServiceSpec | None = None
) -> GcpOptions:
    """Options from a config mapping (`inferstack:gcp`); unknown keys and bad values are errors.

    With `spec`, a refusal also lists what `GcpOptions.problems(spec)` finds in the rest.
    """
    return validation.parse_options(GcpOptions, data, source=source, spec=spec)


__all__ = [
    "CONFIG_KEY",
    "GcpOptions",
    "IdentityMode",
    "gcs_bucket_problem",
    "name_problems",
    "parse_gcp_options",
]
