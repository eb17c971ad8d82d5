"""What the AWS target needs besides the spec: which cluster, where, and how identities bind.

The spec says what to serve; these options say on which EKS cluster (it must exist already),
in which region, on which subnets and security groups Karpenter launches GPU nodes, how pods get
AWS credentials (EKS Pod Identity, or IRSA), and where results go. Pure data, no Pulumi, so the
pure builders (`karpenter`, `iam`) and the tests read them without a Pulumi runtime. Every
problem is reported at once, with the option's path and the fix, before any resource exists:
the values' own checks when they are read (`parse_aws_options`), the checks against the spec in
`AwsOptions.problems`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, ValidationInfo, field_validator

from inferstack.components.aws import names
from inferstack.components.planning import validation
from inferstack.components.planning.clouds import CLOUDS
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.components.planning.validation import StrictModel
from inferstack.contract.images import GPU_FLAVOUR, runtime_tag
from inferstack.errors import Problem

Identity = Literal["pod_identity", "irsa"]
AmiFamily = Literal["al2023", "bottlerocket"]

CONFIG_KEY: Final = "inferstack:aws"
"""The stack config key of these options; every problem's path starts with it."""
KARPENTER_CHART_VERSION: Final = "1.14.1"
"""Pinned Karpenter chart for `install_karpenter=True` (its CRDs: ../shared/schemas/karpenter)."""
KARPENTER_CHART: Final = "oci://public.ecr.aws/karpenter/karpenter"
DEFAULT_KARPENTER_NAMESPACE: Final = "kube-system"
DEFAULT_KARPENTER_SERVICE_ACCOUNT: Final = "karpenter"
DEFAULT_ROOT_VOLUME_GIB: Final = 100
"""The CUDA runtime image unpacked (about 15 GiB), model weights and their page-cache copy, the
image's previous version during a rollout, and the kubelet's image-GC headroom (85% high mark)."""
MIN_ROOT_VOLUME_GIB: Final = 40
DEFAULT_MAX_RECEIVE_COUNT: Final = 5
DEFAULT_RETENTION_SECONDS: Final = 4 * 24 * 3600
"""SQS's own default: four days for a job to be picked up."""
DLQ_RETENTION_SECONDS: Final = 14 * 24 * 3600
"""SQS's maximum, so a dead-lettered message waits as long as possible for someone to look."""
DEFAULT_RESULTS_EXPIRY_DAYS: Final = 30
_REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_CLUSTER: Final = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_ACCOUNT: Final = re.compile(r"^[0-9]{12}$")
_ARN_FIELDS: Final = {
    "oidc_provider_arn": ("iam", "oidc-provider", "arn:aws:iam::ACCOUNT:oidc-provider/ISSUER"),
    "kms_key_arn": ("kms", "key", "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID"),
    "model_kms_key_arn": (
        "kms",
        "key",
        "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID (the key's ARN, not an alias: the bucket's "
        "default encryption shows it)",
    ),
    "keda_operator_role": ("iam", "role", "arn:aws:iam::ACCOUNT:role/PATH/NAME"),
}
"""The ARN options: service, resource type, and the form a refusal shows."""
_ROLE_NAME: Final = re.compile(r"^[\w+=,.@-]{1,64}$")
_SQS_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_K8S_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class AwsOptions(StrictModel):
    """Cloud-side settings of an `AwsInferenceStack` (`inferstack:aws` in the stack config)."""

    cluster_name: str = Field(default="", validate_default=True)
    """The existing EKS cluster; required."""
    region: str = Field(default="", validate_default=True)
    """Its region; required (and must offer the spec's GPU instances)."""
    subnet_ids: list[str] = Field(default_factory=list)
    """The private subnets Karpenter launches GPU nodes in, by ID; or `subnet_selector`."""
    subnet_selector: dict[str, str] = Field(default_factory=dict, validate_default=True)
    """Or their tags (e.g. karpenter.sh/discovery); one of the two is required."""
    security_group_selector: dict[str, str] = Field(default_factory=dict)
    """Tags of the node security groups; empty: `karpenter.sh/discovery: <cluster_name>`."""
    ami_family: AmiFamily = "al2023"
    """AL2023 or Bottlerocket; Karpenter picks the NVIDIA variant for GPU instances."""
    ami_version: str = "latest"
    """The alias version (`al2023@latest`); pin one (e.g. `v20250715`) for reproducible nodes."""
    root_volume_gib: int = DEFAULT_ROOT_VOLUME_GIB
    """Size of the GPU nodes' encrypted gp3 root volume (the image and the model's cache)."""
    identity: Identity = "pod_identity"
    """How pods get AWS credentials: EKS Pod Identity (the agent add-on) or IRSA (OIDC)."""
    oidc_provider_arn: str | None = None
    """IRSA only: the cluster's IAM OIDC provider; None: derived from the cluster's issuer."""
    kms_key_arn: str | None = None
    """Customer-managed key for the queues and the bucket; None: the AWS-managed SSE keys."""
    model_kms_key_arn: str | None = None
    """The customer-managed key the model's bucket encrypts with (SSE-KMS), when it does:
    the pools that read the model get `kms:Decrypt` on it, through S3 for the model object
    only. None: the bucket uses S3-managed keys (SSE-S3), which need no grant."""
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    """Deliveries before SQS moves a message to the dead-letter queue."""
    message_retention_seconds: int = DEFAULT_RETENTION_SECONDS
    """How long the job queue keeps a message nobody has worked yet."""
    results_bucket: str | None = None
    """An existing bucket for results; None: the component creates one."""
    results_prefix: str = "results"
    """Object prefix of this service's results in the bucket."""
    results_expiry_days: int = DEFAULT_RESULTS_EXPIRY_DAYS
    """Days after which a result object is deleted."""
    create_repository: bool = True
    """Create an ECR repository for the runtime image; the Deployments use it when the spec
    names no image of its own."""
    image_tag: str = runtime_tag(GPU_FLAVOUR)
    """The tag the Deployments run from the created repository (tags are immutable there); may
    carry the pushed image's digest too (`0.1.0-cuda@sha256:...`), which is what is then pulled.
    The default is the CUDA flavour's tag: the pools run on GPUs."""
    keda_operator_role: str = "keda-operator"
    """Name or ARN of the IAM role KEDA's operator runs as; it assumes the queue-reader role."""
    account_id: str | None = None
    """The stack's AWS account (12 digits): every ARN above must be in it. None: the ARNs given
    must agree with each other (the account itself is only known at deploy)."""
    cross_account: bool = False
    """Allow `kms_key_arn`, `model_kms_key_arn`, `oidc_provider_arn` and `keda_operator_role` of
    other accounts (a central key, a shared model bucket's key, a shared KEDA) and a
    `results_bucket` another account owns: each such grant is then the user's explicit choice.
    Without it the worker's S3 statements hold only for a
    bucket the deploying account owns (`s3:ResourceAccount`)."""
    install_karpenter: bool = False
    """This stack installs the cluster's one Karpenter (`KarpenterController`: pinned chart,
    interruption queue, controller and GPU node roles). One stack per cluster sets it; the
    others state the Karpenter they rely on below."""
    karpenter_interruption_queue: str | None = None
    """With Karpenter installed elsewhere: the interruption queue it reads (its
    `settings.interruptionQueue`), stated so the stack creates no second one; pass it to the
    policy pack as spot-interruption-handling's `externalInterruptionQueue`."""
    karpenter_namespace: str = DEFAULT_KARPENTER_NAMESPACE
    """Namespace Karpenter's controller runs in (installed here or already)."""
    karpenter_service_account: str = DEFAULT_KARPENTER_SERVICE_ACCOUNT
    """Service account of Karpenter's controller, bound to its role."""

    @field_validator("karpenter_interruption_queue")
    @classmethod
    def _interruption_queue(cls, value: str | None) -> str | None:
        # SQS CreateQueue QueueName: 1-80 letters, digits, '-' and '_'.
        if value is not None and not _SQS_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an SQS queue name (1-80 letters, digits, '-' and '_'); set "
                "the name in the cluster Karpenter's settings.interruptionQueue"
            )
        return value

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        if not value:
            raise ValueError(
                "the AWS target runs on an existing EKS cluster; set cluster_name to its name"
            )
        if not _CLUSTER.match(value):
            raise ValueError(f"{value!r} is not an EKS name")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not value:
            raise ValueError("set region to the cluster's region, e.g. us-east-1")
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region, e.g. us-east-1")
        return value

    @field_validator("subnet_ids")
    @classmethod
    def _subnet_ids(cls, value: list[str]) -> list[str]:
        wrong = [subnet for subnet in value if not subnet.startswith("subnet-")]
        if wrong:
            raise ValueError(
                "; ".join(f"{subnet!r} is not a subnet ID (subnet-...)" for subnet in wrong)
            )
        return value

    @field_validator("subnet_selector")
    @classmethod
    def _subnets_named(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if not value and not info.data.get("subnet_ids") and "subnet_ids" in info.data:
            raise ValueError(
                "Karpenter needs the subnets to launch GPU nodes in; set subnet_selector to "
                "their tags (e.g. {karpenter.sh/discovery: <cluster>}) or subnet_ids"
            )
        return value

    @field_validator("root_volume_gib")
    @classmethod
    def _root_volume(cls, value: int) -> int:
        if value < MIN_ROOT_VOLUME_GIB:
            raise ValueError(
                f"{value} GiB cannot hold the CUDA runtime image and the model; "
                f"use at least {MIN_ROOT_VOLUME_GIB}"
            )
        return value

    @field_validator("max_receive_count")
    @classmethod
    def _receives(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError("SQS allows 1 to 1000 receives per message")
        return value

    @field_validator("message_retention_seconds")
    @classmethod
    def _retention(cls, value: int) -> int:
        if not 60 <= value <= DLQ_RETENTION_SECONDS:
            raise ValueError(f"SQS keeps messages 60 to {DLQ_RETENTION_SECONDS} seconds")
        return value

    @field_validator("results_expiry_days")
    @classmethod
    def _expiry(cls, value: int) -> int:
        if value < 1:
            raise ValueError("use at least 1 day")
        return value

    @field_validator("results_bucket")
    @classmethod
    def _results_bucket(cls, value: str | None) -> str | None:
        # The worker's policy grants s3:GetObject/PutObject on this bucket: `*` would be all.
        problem = names.s3_bucket_problem(value) if value is not None else ""
        if problem:
            raise ValueError(f"{problem}; name the existing bucket, or leave it unset")
        return value

    @field_validator("oidc_provider_arn", "kms_key_arn", "model_kms_key_arn")
    @classmethod
    def _given_arn(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            _arn(value, *_ARN_FIELDS[str(info.field_name)])
        return value

    @field_validator("keda_operator_role")
    @classmethod
    def _keda_role(cls, value: str) -> str:
        # The queue-scaler role trusts exactly this principal: a typo would trust another role.
        if value.startswith("arn:"):
            _arn(value, *_ARN_FIELDS["keda_operator_role"])
        elif not _ROLE_NAME.match(value):
            raise ValueError(
                f"{value!r} is not an IAM role name or role ARN (arn:aws:iam::ACCOUNT:role/NAME); "
                "name the KEDA operator's role, e.g. keda-operator (a role with a path: its ARN, "
                "arn:aws:iam::ACCOUNT:role/PATH/NAME)"
            )
        return value

    @field_validator("account_id")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT.match(value):
            raise ValueError(f"{value!r} is not an AWS account ID (12 digits)")
        return value

    @field_validator("karpenter_namespace", "karpenter_service_account")
    @classmethod
    def _karpenter_identity(cls, value: str) -> str:
        # Karpenter's controller role is bound to this namespace and service account.
        if not _K8S_NAME.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes name (lowercase letters, digits, '-')")
        return value

    @property
    def ami_alias(self) -> str:
        """The EC2NodeClass alias, e.g. `al2023@latest`."""
        return f"{self.ami_family}@{self.ami_version}"

    def security_groups(self) -> dict[str, str]:
        """The security-group tag selector, with Karpenter's discovery tag as the default."""
        return dict(self.security_group_selector) or {"karpenter.sh/discovery": self.cluster_name}

    def problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        """What this target cannot build for `spec` with these options, each with its fix."""
        problems = self._region_problems(spec) + self.account_problems()
        if self.model_kms_key_arn is not None and not spec.model.uri.startswith("s3://"):
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.model_kms_key_arn",
                    f"the model ({spec.model.uri}) is not in S3, so no pool reads anything this "
                    "key encrypts; remove model_kms_key_arn, or set it for an s3:// model.uri",
                )
            )
        if spec.batch is not None and spec.batch.queue.kind != "sqs":
            problems.append(
                Problem(
                    "batch.queue.kind",
                    f"the AWS target creates an SQS queue, not {spec.batch.queue.kind}; set "
                    "batch.queue.kind to sqs",
                )
            )
        return problems

    def arns(self) -> dict[str, names.Arn]:
        """The ARNs these options name, by field (a role given by name is the stack's own)."""
        given = {field: getattr(self, field) for field in _ARN_FIELDS}
        return {
            field: _arn(value, *_ARN_FIELDS[field])
            for field, value in given.items()
            if value is not None and value.startswith("arn:")
        }

    def model_key(self) -> names.Arn | None:
        """The model bucket's key (`model_kms_key_arn`), read, or None."""
        return self.arns().get("model_kms_key_arn")

    def account_problems(self, deploying: str | None = None) -> list[Problem]:
        """ARNs of another account or region than the stack's, each naming its option.

        `deploying`: the account of the credentials at deploy (`AwsInferenceStack` passes it
        at `pulumi up`). Before that, without `account_id`, the stack's account is unknown:
        the ARNs must then agree with each other, and a single foreign one is caught at deploy.
        """
        arns = self.arns()
        problems = []
        if deploying and self.account_id and deploying != self.account_id:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.account_id",
                    f"the stack deploys with credentials of account {deploying}, not "
                    f"{self.account_id}; fix account_id or use the stack account's credentials",
                )
            )
        key = arns.get("kms_key_arn")
        if key is not None and self.region and key.region != self.region:
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.kms_key_arn",
                    f"the key is in {key.region}, the queues and bucket in {self.region}; "
                    f"use a key of {self.region}",
                )
            )
        if self.cross_account:
            return problems
        for field, arn in arns.items():
            others = {name: other for name, other in arns.items() if name != field}
            problem = names.account_problem(arn, deploying or self.account_id, others)
            if problem:
                problems.append(
                    Problem(
                        f"{CONFIG_KEY}.{field}",
                        f"{problem}; name one of the stack's own account, or set "
                        "cross_account: true to grant another account on purpose",
                    )
                )
        return problems

    def _region_problems(self, spec: InferenceServiceSpec) -> list[Problem]:
        cloud = CLOUDS["aws"]
        problems: list[Problem] = []
        if not self.region:
            return problems  # refused when read; nothing to compare the GPUs with
        for path, pool in (("realtime", spec.realtime), ("batch", spec.batch)):
            if pool is None:
                continue
            machines = cloud.machines_for(pool.gpu.type)
            if machines is None or cloud.offers(machines.family, self.region):
                continue
            where = ", ".join(sorted(cloud.regions_of(machines.family)))
            problems.append(
                Problem(
                    f"{CONFIG_KEY}.region",
                    f"{self.region} has no {machines.family} instances ({pool.gpu.type}, "
                    f"{path} pool) in the region table; use one of: {where}, or another "
                    f"{path}.gpu.type",
                )
            )
        return problems


def _arn(value: str, service: str, kind: str, form: str) -> names.Arn:
    try:
        return names.parse_arn(value, service, kind, regional=service == "kms")
    except ValueError as error:
        raise ValueError(f"{error}; expected {form}") from None


def parse_aws_options(
    data: Mapping[str, Any] | None, *, source: str, spec: InferenceServiceSpec | None = None
) -> AwsOptions:
    """Options from a config mapping (`inferstack:aws`): unknown keys and bad values are errors.

    With `spec`, a refusal also lists what `AwsOptions.problems(spec)` finds in the rest.
    """
    return validation.parse_options(AwsOptions, data, source=source, spec=spec)


__all__ = [
    "CONFIG_KEY",
    "KARPENTER_CHART",
    "KARPENTER_CHART_VERSION",
    "AwsOptions",
    "parse_aws_options",
]
