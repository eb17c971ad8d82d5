"""What an offline run answers for the data sources the components read, by invoke token.

Offline there is no cloud to ask, so every answer is a placeholder that no real account has;
the capture lists each call with its answer, and the preview prints them as placeholders. A
token missing here answers `{}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

PLACEHOLDER_ACCOUNT: Final = "000000000000"
"""The account ID offline data sources answer with: no real account has it."""
PLACEHOLDER_REGION: Final = "placeholder"

Answer = Callable[[Mapping[str, Any]], dict[str, Any]]


def _caller_identity(args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "accountId": PLACEHOLDER_ACCOUNT,
        "arn": f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:user/placeholder",
        "id": PLACEHOLDER_ACCOUNT,
        "userId": "PLACEHOLDER",
    }


def _partition(args: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"}


def _cluster(args: Mapping[str, Any]) -> dict[str, Any]:
    name = str(args.get("name", "cluster"))
    return {
        "id": name,
        "name": name,
        "arn": f"arn:aws:eks:{PLACEHOLDER_REGION}:{PLACEHOLDER_ACCOUNT}:cluster/{name}",
        "endpoint": f"https://{name}.eks.placeholder.invalid",
        "version": "1.33",
        "status": "ACTIVE",
        "identities": [
            {"oidcs": [{"issuer": f"https://oidc.eks.placeholder.invalid/id/{name.upper()}"}]}
        ],
        "vpcConfig": {"clusterSecurityGroupId": "sg-00000000000000000"},
    }


DATA_SOURCE_PLACEHOLDERS: Final[Mapping[str, Answer]] = {
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getPartition:getPartition": _partition,
    "aws:eks/getCluster:getCluster": _cluster,
}


def answer(token: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The placeholder answer to one invoke: `{}` for a token without one."""
    placeholder = DATA_SOURCE_PLACEHOLDERS.get(token)
    return placeholder(args) if placeholder else {}


__all__ = ["DATA_SOURCE_PLACEHOLDERS", "PLACEHOLDER_ACCOUNT", "PLACEHOLDER_REGION", "answer"]
