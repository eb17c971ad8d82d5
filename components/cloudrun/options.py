"""What the Cloud Run target needs besides the spec: where, which image, who may call it.

The spec says what to serve; these options say in which project and region, from which Artifact
Registry image (the runtime's `-cuda` build), who may invoke the service (never `allUsers` unless
`public: true`), where queue results land, and whether GPU zonal redundancy is bought. Pure data,
no Pulumi. Every problem is reported at once with the option's path and the fix: the values' own
checks when read (`parse_cloudrun_options`), the checks against the spec in `problems`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field, field_validator

from inferstack.components.planning import validation
from inferstack.components.planning.clouds import CLOUDRUN
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel
from inferstack.contract.clouds import GCP_PROJECT_ID
from inferstack.contract.images import ImageReferenceError, image_flavour, parse_image
from inferstack.errors import Problem

CONFIG_KEY: Final = "inferstack:cloudrun"
"""The stack config key of these options; every problem's path starts with it."""
Ingress = Literal["all", "internal", "internal-and-cloud-load-balancing"]
DEFAULT_MAX_DELIVERY_ATTEMPTS: Final = 5
_REGISTRY: Final = re.compile(
    r"^(?P<location>[a-z]+-[a-z]+\d?|[a-z]+)-docker\.pkg\.dev/(?P<project>[a-z][a-z0-9-]{4,28}"
    r"[a-z0-9])/(?P<repository>[a-z0-9][a-z0-9-]*)/[a-z0-9]+(?:[._/-][a-z0-9]+)*$"
)
_MEMBER: Final = re.compile(r"^(user|serviceAccount|group|domain|principal|principalSet):\S+$")
_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_PREFIX: Final = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
FORM: Final = "LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE:TAG[@sha256:DIGEST]"


@dataclass(frozen=True)
class Registry:
    """The Artifact Registry repository an image is in (what the reader binding names)."""

    location: str
    project: str
    repository: str


class CloudRunOptions(StrictModel):
    """Cloud-side settings of a `CloudRunInferenceStack` (`inferstack:cloudrun`)."""

    project: str = Field(default="", validate_default=True)
    """The project ID of the service, its identities and the queue; required."""
    project_number: str = Field(default="", validate_default=True)
    """The project number (names the Pub/Sub service agent that dead-letters); required."""
    region: str = Field(default="", validate_default=True)
    """A region where Cloud Run offers the pool's GPU; required."""
    image: str = Field(default="", validate_default=True)
    """The runtime's CUDA image in Artifact Registry (`make image`, pushed); required."""
    ingress: Ingress = "internal-and-cloud-load-balancing"
    """Where requests may come from: the VPC and a load balancer by default, `all` for the
    internet (IAM still decides who may invoke)."""
    invokers: list[str] = Field(default_factory=list)
    """IAM members granted `roles/run.invoker` on this service only (`serviceAccount:...`)."""
    public: bool = False
    """Grant `allUsers` the invoker role: anyone on the internet runs the GPU (the pack warns)."""
    gpu_zonal_redundancy: bool = False
    """Off (the default) is cheaper per GPU-second and best effort on a zonal outage; on
    reserves capacity in other zones of the region."""
    max_delivery_attempts: int = Field(default=DEFAULT_MAX_DELIVERY_ATTEMPTS, ge=5, le=100)
    """Deliveries before Pub/Sub dead-letters a queue message (Pub/Sub allows 5 to 100)."""
    results_bucket: str | None = None
    """An existing bucket the queue worker writes results to; required with a batch pool."""
    results_prefix: str = "results"
    """Object prefix of the results; this service's are under `<prefix>/<service>/`."""

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not GCP_PROJECT_ID.match(value):
            raise ValueError(f"{value!r} is not a project ID (6-30 of a-z, 0-9, -), e.g. my-proj")
        return value

    @field_validator("project_number")
    @classmethod
    def _project_number(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError(
                "set project_number to the project's number (gcloud projects describe)"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        offered = CLOUDRUN.regions_of("cloudrun-l4")
        if value not in offered:
            raise ValueError(
                f"{value!r} has no Cloud Run GPUs; use one of: {', '.join(sorted(offered))}"
            )
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        try:
            parsed = parse_image(value)
        except ImageReferenceError as error:
            raise ValueError(f"{error}; use {FORM}") from None
        if not _REGISTRY.match(parsed.repository):
            raise ValueError(f"{value!r} is not in Artifact Registry; use {FORM}")
        if image_flavour(value) == "cpu":
            raise ValueError("the image is the CPU build; the GPU service runs the -cuda tag")
        return value

    @field_validator("invokers")
    @classmethod
    def _invokers(cls, value: list[str]) -> list[str]:
        for member in value:
            if member in ("allUsers", "allAuthenticatedUsers"):
                raise ValueError(f"{member} is not an invoker: set public: true to say so")
            if not _MEMBER.match(member):
                raise ValueError(f"{member!r} is not an IAM member, e.g. serviceAccount:EMAIL")
        return value

    @field_validator("results_bucket")
    @classmethod
    def _results_bucket(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET.match(value):
            raise ValueError(f"{value!r} is not a Cloud Storage bucket name; name the bucket")
        return value

    @field_validator("results_prefix")
    @classmethod
    def _results_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError(f"{value!r} is not an object prefix without leading or trailing /")
        return value

    @property
    def registry(self) -> Registry:
        """The image's repository (valid by construction)."""
        match = _REGISTRY.match(parse_image(self.image).repository)
        assert match is not None  # noqa: S101 (the validator checked it)
        return Registry(match["location"], match["project"], match["repository"])

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """What these options find wrong with `spec` (every problem at once)."""
        problems: list[Problem] = []
        if spec.batch is not None and self.results_bucket is None:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.results_bucket",
                    "the batch pool's worker writes results to Cloud Storage; set "
                    "results_bucket to an existing bucket",
                )
            )
        if spec.batch is not None and spec.batch.queue.kind != "pubsub":
            problems.append(
                Problem(
                    "batch.queue.kind",
                    f"{spec.batch.queue.kind} is not a queue of the Cloud Run target, whose "
                    "worker pool reads Pub/Sub; use kind: pubsub",
                )
            )
        if self.public and self.ingress != "all":
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.public",
                    f"public: true grants allUsers, but ingress {self.ingress} admits no "
                    "internet request; set ingress: all or drop public",
                )
            )
        return problems


def parse_cloudrun_options(
    data: Mapping[str, Any] | None, *, source: str, spec: InferenceServiceSpec | None = None
) -> CloudRunOptions:
    """Options from a config mapping (`inferstack:cloudrun`): unknown keys and bad values are
    errors; with `spec`, a refusal also lists what `problems(spec)` finds in the rest."""
    return validation.parse_options(CloudRunOptions, data, source=source, spec=spec)


__all__ = ["CONFIG_KEY", "CloudRunOptions", "Registry", "parse_cloudrun_options"]
