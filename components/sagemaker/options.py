"""What the SageMaker target needs besides the spec: where, which image, where async work lands.

The spec says what to serve; these options say in which region, from which ECR image (SageMaker
pulls only from ECR in the endpoint's own region), which existing S3 bucket holds the
asynchronous endpoint's inputs, outputs and failures, and how the realtime variant routes
requests. Pure data, no Pulumi. Every problem is reported at once with the option's path and the
fix: the values' own checks when read (`parse_sagemaker_options`), the checks against the spec
in `SageMakerOptions.problems`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import Field, field_validator

from inferstack.components.aws import names
from inferstack.components.planning import validation
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel
from inferstack.contract.images import ImageReferenceError, parse_image
from inferstack.errors import Problem

CONFIG_KEY: Final = "inferstack:sagemaker"
"""The stack config key of these options; every problem's path starts with it."""
RoutingStrategy = Literal["LEAST_OUTSTANDING_REQUESTS", "RANDOM"]
_REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ECR: Final = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d)\.amazonaws\.com/"
    r"(?P<repository>[a-z0-9]+(?:[._/-][a-z0-9]+)*)$"
)
_PREFIX: Final = re.compile(r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
MODEL_SCHEMES: Final = ("s3", "builtin")
"""Where a SageMaker model may come from: an S3 object the execution role reads, or inside the
image. Other schemes would need egress the role cannot scope."""


@dataclass(frozen=True)
class EcrImage:
    """The runtime image in ECR, split into what the execution role's policy names."""

    account: str
    region: str
    repository: str
    reference: str
    """The full reference SageMaker pulls (`<registry>/<repository>[:tag][@digest]`)."""

    @property
    def repository_arn(self) -> str:
        """The repository's ARN: the only one the role may pull from."""
        return f"arn:aws:ecr:{self.region}:{self.account}:repository/{self.repository}"


def parse_ecr_image(reference: str) -> EcrImage:
    """The ECR image of `reference`, or `ValueError` saying the form."""
    form = "ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY[:TAG][@sha256:DIGEST]"
    try:
        parsed = parse_image(reference)
    except ImageReferenceError as error:
        raise ValueError(f"{error}; use {form}") from None
    match = _ECR.match(parsed.repository)
    if match is None:
        message = f"{reference!r} is not an ECR image (SageMaker pulls from ECR); use {form}"
        raise ValueError(message)
    return EcrImage(match["account"], match["region"], match["repository"], reference)


class SageMakerOptions(StrictModel):
    """Cloud-side settings of a `SageMakerInferenceStack` (`inferstack:sagemaker`)."""

    region: str = Field(default="", validate_default=True)
    """The region of the endpoints; required (the image must be in ECR there)."""
    image: str = Field(default="", validate_default=True)
    """The runtime image in ECR, pinned by digest for reproducible copies; required."""
    async_bucket: str | None = None
    """An existing bucket for the asynchronous endpoint's inputs, outputs and failures; required
    when the spec has a batch pool."""
    async_prefix: str = "async"
    """Object prefix in that bucket; this service's paths are `<prefix>/<service>/...`."""
    routing_strategy: RoutingStrategy = "LEAST_OUTSTANDING_REQUESTS"
    """How the realtime variant picks a copy: the least busy (a batcher behind each copy makes
    queue length the right signal) or at random."""
    model_kms_key_arn: str | None = None
    """The customer-managed key the model's bucket encrypts with (SSE-KMS), when it does: the
    execution role gets `kms:Decrypt` on it, through S3 for the model object only (the same
    statement as the AWS target's). None: the bucket uses S3-managed keys, which need no grant.
    A key of another account must also allow the role in its key policy."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not value:
            raise ValueError("set region to the endpoints' region, e.g. us-east-1")
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region, e.g. us-east-1")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not value:
            raise ValueError("set image to the runtime image pushed to ECR (make image, push)")
        parse_ecr_image(value)
        return value

    @field_validator("async_bucket")
    @classmethod
    def _async_bucket(cls, value: str | None) -> str | None:
        problem = names.s3_bucket_problem(value) if value is not None else ""
        if problem:
            raise ValueError(f"{problem}; name the existing bucket")
        return value

    @field_validator("async_prefix")
    @classmethod
    def _async_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError(
                f"{value!r} is not an object prefix of safe characters without leading, trailing "
                "or doubled slashes (the role may write only under it); e.g. async"
            )
        return value

    @field_validator("model_kms_key_arn")
    @classmethod
    def _model_key(cls, value: str | None) -> str | None:
        if value is not None:
            _key_arn(value)
        return value

    def model_key(self) -> names.Arn | None:
        """The model bucket's key (`model_kms_key_arn`), read, or None."""
        return None if self.model_kms_key_arn is None else _key_arn(self.model_kms_key_arn)

    @property
    def ecr_image(self) -> EcrImage:
        """The image, parsed (valid by construction)."""
        return parse_ecr_image(self.image)

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """What these options find wrong with `spec` (every problem at once)."""
        problems: list[Problem] = []
        image = self.ecr_image
        if image.region != self.region:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.image",
                    f"the image is in ECR of {image.region}, the endpoints in {self.region}; "
                    f"SageMaker pulls from its own region: push the image to {self.region}",
                )
            )
        scheme = spec.model.uri.split("://", 1)[0]
        if scheme not in MODEL_SCHEMES:
            problems.append(
                Problem(
                    "model.uri",
                    f"{scheme}:// cannot be served on SageMaker, whose execution role reads only "
                    "the model's own S3 object; copy the model to s3://BUCKET/KEY",
                )
            )
        if self.model_kms_key_arn is not None and not spec.model.uri.startswith("s3://"):
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.model_kms_key_arn",
                    f"the model ({spec.model.uri}) is not in S3, so the role reads nothing this "
                    "key encrypts; remove model_kms_key_arn, or set it for an s3:// model.uri",
                )
            )
        if spec.batch is not None and self.async_bucket is None:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.async_bucket",
                    "the batch pool runs as an asynchronous endpoint whose inputs, outputs and "
                    "failures live in S3; set async_bucket to an existing bucket",
                )
            )
        return problems


def _key_arn(value: str) -> names.Arn:
    try:
        return names.parse_arn(value, "kms", "key", regional=True)
    except ValueError as error:
        form = "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (the key's ARN, not an alias)"
        raise ValueError(f"{error}; expected {form}") from None


def model_object(uri: str) -> tuple[str, str] | None:
    """(bucket, key) of an `s3://` model URI; None for a model inside the image."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def parse_sagemaker_options(
    data: Mapping[str, Any] | None, *, source: str, spec: InferenceServiceSpec | None = None
) -> SageMakerOptions:
    """Options from a config mapping (`inferstack:sagemaker`): unknown keys and bad values are
    errors; with `spec`, a refusal also lists what `problems(spec)` finds in the rest."""
    return validation.parse_options(SageMakerOptions, data, source=source, spec=spec)


__all__ = [
    "CONFIG_KEY",
    "EcrImage",
    "SageMakerOptions",
    "model_object",
    "parse_ecr_image",
    "parse_sagemaker_options",
]
