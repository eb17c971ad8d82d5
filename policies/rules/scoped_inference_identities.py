"""scoped-inference-identities: inference roles get named data-plane actions on named resources.

Why: the pods of an inference service run untrusted input through a model. A role that may do
`sqs:*` or `s3:*`, or read and write data on `*` resources, turns one compromised pod into access
to every queue and bucket of the account: read other teams' jobs, delete their messages, replace
their results. The worker needs a handful of actions on one queue, one DLQ and one prefix.

A wildcard inside an ARN is as wide as a bare `*`: `arn:aws:s3:::*/*` is every object of every
bucket, `arn:aws:kms:*:*:key/*` every key of every account (IAM matches `*` and `?` in each
segment of a Resource ARN: IAM User Guide, "IAM JSON policy elements: Resource"). So every
segment (partition, service, region, account, resource) of a data-plane statement's ARN must be
spelt out; the one wildcard kept is a trailing `/*` of an S3 object ARN under a named bucket
(a results prefix: S3 grants objects by key prefix).

Fix: list the actions (e.g. `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `s3:PutObject`) and the
ARNs of the service's own queue, DLQ and results prefix; keep `*` resources for the APIs that
have no resource-level permissions (EC2 Describe*, pricing), which are not data-plane.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.labels import SERVICE_LABEL
from inferstack.policies.resources import Finding, Resource, list_of, mapping_of
from inferstack.policies.rule import Rule, config_value

ARN_SEGMENTS: Final = ("partition", "service", "region", "account", "resource")
WILDCARDS: Final = ("*", "?")
"""IAM's wildcard characters in Resource ARNs."""
POD_PRINCIPALS: Final = frozenset({"pods.eks.amazonaws.com"})
"""EKS Pod Identity; IRSA roles trust a `Federated` OIDC provider instead."""


def _trust_is_for_pods(role: Resource) -> bool:
    raw = role.get("assumeRolePolicy")
    if not isinstance(raw, str):
        return False
    try:
        document = json.loads(raw)
    except ValueError:
        return False
    for statement in list_of(mapping_of(document).get("Statement")):
        principal = mapping_of(mapping_of(statement).get("Principal"))
        services = principal.get("Service")
        services = services if isinstance(services, list) else [services]
        federated = str(principal.get("Federated", ""))
        if POD_PRINCIPALS & set(map(str, services)) or ":oidc-provider/" in federated:
            return True
    return False


def _is_inference_role(role: Resource) -> bool:
    return SERVICE_LABEL in mapping_of(role.get("tags")) or _trust_is_for_pods(role)


def _as_list(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value]) if v is not None]


def wildcard_segment(resource: str) -> str | None:
    """The ARN segment of `resource` that holds a wildcard, or None.

    `*` alone is "every resource"; a trailing `/*` under a named S3 bucket (an object prefix)
    is the one wildcard allowed.
    """
    if not any(mark in resource for mark in WILDCARDS):
        return None
    parts = resource.split(":", 5)
    if len(parts) != 6:
        return "resource"  # `*`, or not an ARN at all
    for segment, value in zip(ARN_SEGMENTS, parts[1:], strict=True):
        if any(mark in value for mark in WILDCARDS) and not _object_prefix(parts, segment):
            return segment
    return None


def _object_prefix(parts: list[str], segment: str) -> bool:
    """An S3 object ARN whose only wildcard is a final `/*` after a named bucket."""
    if segment != "resource" or parts[2] != "s3":
        return False
    named, _, star = parts[5].rpartition("/")
    return star == "*" and bool(named) and not any(mark in named for mark in WILDCARDS)


def _statement_problems(where: str, statement: Mapping[str, Any], services: set[str]) -> list[str]:
    problems = []
    resources = _as_list(statement.get("Resource"))
    for action in _as_list(statement.get("Action")):
        service, _, name = action.partition(":")
        if action == "*" or (service.lower() in services and "*" in name):
            problems.append(f"{where} allows {action!r}")
        elif service.lower() in services and ("*" in resources or "NotResource" in statement):
            # NotResource in an Allow grants every resource but the ones it lists.
            problems.append(f"{where} allows {action!r} on every resource ('*')")
        elif service.lower() in services:
            problems.extend(
                f"{where} allows {action!r} on {resource!r}, a wildcard in its {segment}"
                for resource in resources
                if (segment := wildcard_segment(resource)) is not None
            )
    return problems


def _problems(document: Mapping[str, Any], services: set[str]) -> list[str]:
    problems = []
    for index, statement in enumerate(list_of(document.get("Statement"))):
        statement = mapping_of(statement)
        if statement.get("Effect") == "Allow":
            where = f"statement {statement.get('Sid') or index}"
            problems.extend(_statement_problems(where, statement, services))
    return problems


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for wildcard data-plane permissions in the policies of inference roles."""
    services = {str(s).lower() for s in config_value(config, RULE, "dataPlaneServices")}
    roles = {r.urn: r for r in resources if r.type == resource_types.IAM_ROLE}
    findings = []
    for resource in resources:
        if resource.type != resource_types.IAM_ROLE_POLICY:
            continue
        owners = [roles[u] for u in resource.property_dependencies.get("role", ()) if u in roles]
        if not any(_is_inference_role(role) for role in owners):
            continue
        raw = resource.get("policy")
        if not isinstance(raw, str):
            continue  # computed in preview: judged once known
        try:
            document = mapping_of(json.loads(raw))
        except ValueError:
            findings.append(
                Finding("IAM policy is not JSON; write it with json.dumps", resource.urn)
            )
            continue
        for problem in _problems(document, services):
            findings.append(
                Finding(
                    f"IAM policy of an inference role: {problem}; name the actions the pod "
                    "needs and the ARNs of its own queue, dead-letter queue and results prefix",
                    resource.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="scoped-inference-identities",
    description="Inference pod roles must not hold wildcard data-plane permissions.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "dataPlaneServices": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "default": ["sqs", "s3", "sns", "kinesis", "dynamodb", "kms"],
            "description": "IAM service prefixes whose wildcards are data-plane access",
        }
    },
)
