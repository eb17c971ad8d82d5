"""AWS names and ARNs from the stack config, checked in full before any policy cites them.

Every value here ends up in an IAM policy's `Resource` or a trust policy's `Principal`, where IAM
reads `*` and `?` as wildcards: a bucket named `*` would give the worker every bucket of the
account, a key ARN `arn:aws:kms:*:*:key/*` every key of every account. So a name must follow
the service's own naming rules (which have no wildcard characters) and an ARN must have every
segment (partition, service, region, account, resource) spelt out.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

PARTITIONS: Final = {"aws": "", "aws-cn": "cn-", "aws-us-gov": "us-gov-"}
"""AWS partitions and the region prefix each one's regions carry ("" for the commercial one)."""

_S3_BUCKET: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_RESERVED_PREFIXES: Final = ("xn--", "sthree-", "amzn-s3-demo-")
_S3_RESERVED_SUFFIXES: Final = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_REGION: Final = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_ACCOUNT: Final = re.compile(r"^[0-9]{12}$")
_KMS_KEY_ID: Final = re.compile(
    r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
_ROLE_PATH_AND_NAME: Final = re.compile(r"^([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")
_OIDC_PROVIDER: Final = re.compile(r"^[a-z0-9.-]+(/[A-Za-z0-9._-]+)*$")


@dataclass(frozen=True)
class Arn:
    """An ARN read segment by segment (IAM User Guide, "IAM identifiers", ARN format)."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    def __str__(self) -> str:
        return ":".join(
            ("arn", self.partition, self.service, self.region, self.account, self.resource)
        )


def s3_bucket_problem(name: str) -> str:
    """Why `name` is not an S3 general purpose bucket name, or "".

    Amazon S3 User Guide, "General purpose bucket naming rules"
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html): 3 to 63
    lowercase letters, digits, periods and hyphens, beginning and ending with a letter or digit,
    no two adjacent periods, not formatted as an IP address, none of the reserved prefixes
    (xn--, sthree-, amzn-s3-demo-) or suffixes (-s3alias, --ol-s3, .mrap, --x-s3, --table-s3).
    """
    if not _S3_BUCKET.match(name) or ".." in name:
        return (
            f"{name!r} is not an S3 bucket name (3-63 lowercase letters, digits, '.' and '-', "
            "beginning and ending with a letter or digit)"
        )
    if _is_ip_address(name):
        return f"{name!r} is formatted as an IP address, which S3 refuses as a bucket name"
    if name.startswith(_S3_RESERVED_PREFIXES) or name.endswith(_S3_RESERVED_SUFFIXES):
        return (
            f"{name!r} uses a prefix or suffix S3 reserves (reserved: xn--, sthree-, -s3alias, ...)"
        )
    return ""


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_arn(value: str, service: str, resource_type: str, *, regional: bool) -> Arn:
    """`value` read as an ARN of `service` whose resource is `<resource_type>/...`.

    Raises ValueError naming the wrong segment. Wildcards (`*`, `?`) are refused everywhere:
    IAM matches them in a policy's Resource and Principal, so one would widen the grant to
    every region, account or resource. `regional`: whether the service's ARNs carry a region
    (KMS does; IAM, being global, leaves it empty).
    """
    if "*" in value or "?" in value:
        raise ValueError(f"{value!r} has a wildcard; name one {service} {resource_type} in full")
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        raise ValueError(f"{value!r} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:...)")
    arn = Arn(*parts[1:])
    problem = _segment_problem(arn, service, resource_type, regional=regional)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return arn


def _segment_problem(arn: Arn, service: str, resource_type: str, *, regional: bool) -> str:
    if arn.partition not in PARTITIONS:
        return f"partition {arn.partition!r} is not one of {', '.join(PARTITIONS)}"
    if arn.service != service:
        return f"service {arn.service!r} is not {service}"
    if regional and not _REGION.match(arn.region):
        return f"region {arn.region!r} is not an AWS region, e.g. us-east-1"
    if regional and not arn.region.startswith(PARTITIONS[arn.partition]):
        return f"region {arn.region} is not in partition {arn.partition}"
    if not regional and arn.region:
        return f"{service} ARNs have no region; leave that segment empty"
    if not _ACCOUNT.match(arn.account):
        return f"account {arn.account!r} is not a 12-digit AWS account ID"
    kind, slash, rest = arn.resource.partition("/")
    if kind != resource_type or not slash:
        return f"resource {arn.resource!r} is not a {resource_type} ({resource_type}/...)"
    return _resource_problem(resource_type, rest)


def _resource_problem(resource_type: str, rest: str) -> str:
    checks = {
        "key": (_KMS_KEY_ID, "a key ID (a UUID, or mrk-... for a multi-Region key)"),
        "role": (_ROLE_PATH_AND_NAME, "a role NAME or PATH/NAME (letters, digits, +=,.@_-)"),
        "oidc-provider": (_OIDC_PROVIDER, "the provider's issuer host and path"),
    }
    pattern, what = checks[resource_type]
    if not pattern.match(rest):
        return f"{rest!r} is not {what}"
    return ""


def account_problem(arn: Arn, account: str | None, others: dict[str, Arn]) -> str:
    """Why `arn` is not of the stack's account, or "": `account` if known, else the others'.

    The stack's account is only certain at deploy (the caller identity); at parse time it is
    known if the options name it (`account_id`), else the ARNs given must at least agree.
    """
    if account is not None:
        if arn.account != account:
            return f"account {arn.account} is not the stack's account {account}"
        return ""
    foreign = sorted({other.account for other in others.values()} - {arn.account})
    if foreign:
        return f"account {arn.account} differs from {foreign[0]} named by another option"
    return ""


__all__ = ["PARTITIONS", "Arn", "account_problem", "parse_arn", "s3_bucket_problem"]
