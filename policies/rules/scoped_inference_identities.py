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

Who may become a role matters as much as what it may do. Every role of the stack (written by
the components or by hand, tagged or not) is judged by its trust policy: an Allow that admits
`"*"` (or `{"AWS": "*"}`, or a wildcard inside a principal), or that uses `NotPrincipal` (every
principal but those listed), lets anyone assume it; one that names an account's root
(`arn:aws:iam::123456789012:root`, or the bare 12-digit ID, which IAM stores as the root ARN)
delegates to every identity of that account; and a role or user of another account than the
stack's is cross-account access. Principal formats: IAM User Guide, "AWS JSON policy elements:
Principal" (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html).
A Condition does not exempt a statement: the pack cannot judge what it restricts.

Fix: list the actions (e.g. `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `s3:PutObject`) and the
ARNs of the service's own queue, DLQ and results prefix; keep `*` resources for the APIs that
have no resource-level permissions (EC2 Describe*, pricing), which are not data-plane. Trust
the principal that needs the role by its ARN (the pods' service, the OIDC provider, KEDA's
role); an account that is meant to be trusted goes in `trustedAccounts` (the explicit
cross-account option), and `accountId` names the stack's own account so its root and roles
pass (without it, only role ARNs the stack itself reports tell the pack its account).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.labels import SERVICE_LABEL
from inferstack.policies.resources import Finding, Resource, list_of, mapping_of
from inferstack.policies.rule import Rule, config_value

ARN_SEGMENTS: Final = ("partition", "service", "region", "account", "resource")
WILDCARDS: Final = ("*", "?")
"""IAM's wildcard characters in Resource ARNs."""
ACCOUNT_ID: Final = re.compile(r"^[0-9]{12}$")
AWS_PRINCIPAL_ARN: Final = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):(?P<service>iam|sts)::(?P<account>[0-9]{12}):"
    r"(?P<resource>.+)$"
)
"""An `AWS` principal as an ARN: an account's root, an IAM role or user, an STS session."""
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


@dataclass(frozen=True)
class AwsPrincipal:
    """What an `AWS` principal value names: its account, and whether it is the account's root."""

    account: str | None
    """None for a unique ID (AROA..., AIDA...), whose account the text does not say."""
    root: bool


def aws_principal(value: str) -> AwsPrincipal | None:
    """Read an `AWS` principal: a bare account ID or `arn:...:iam::ID:root` is the account's root,
    `arn:...:iam::ID:role/...` / `user/...` or `arn:...:sts::ID:assumed-role/...` an identity of
    account ID; None for a wildcard (judged apart). Formats: IAM User Guide, "AWS JSON policy
    elements: Principal"."""
    if any(mark in value for mark in WILDCARDS):
        return None
    if ACCOUNT_ID.match(value):
        return AwsPrincipal(value, root=True)
    match = AWS_PRINCIPAL_ARN.match(value)
    if match is None:
        return AwsPrincipal(None, root=False)
    return AwsPrincipal(match["account"], root=match["resource"] == "root")


def _principal_values(principal: Any) -> list[tuple[str, str]]:
    """(kind, value) pairs of a Principal element; `"*"` alone is ("*", "*")."""
    if isinstance(principal, str):
        return [("*", principal)]
    pairs: list[tuple[str, str]] = []
    for kind, values in mapping_of(principal).items():
        pairs.extend((str(kind), value) for value in _as_list(values))
    return pairs


def trust_problems(document: Mapping[str, Any], stack: set[str], trusted: set[str]) -> list[str]:
    """What a role's trust policy admits beyond named principals of the stack's accounts."""
    problems = []
    for index, statement in enumerate(list_of(document.get("Statement"))):
        statement = mapping_of(statement)
        if statement.get("Effect") != "Allow":
            continue
        where = f"trust statement {statement.get('Sid') or index}"
        if "NotPrincipal" in statement:
            problems.append(f"{where} admits every principal but those listed (NotPrincipal)")
        for kind, value in _principal_values(statement.get("Principal")):
            if any(mark in value for mark in WILDCARDS):
                problems.append(f"{where} admits any principal ({kind}: {value!r})")
                continue
            if kind != "AWS":
                continue  # Service and Federated name an AWS service or an identity provider
            named = aws_principal(value)
            if named is None or named.account is None or named.account in trusted:
                continue
            if named.root and named.account not in stack:
                problems.append(
                    f"{where} admits every identity of account {named.account} ({value!r}, its "
                    "root)"
                )
            elif stack and named.account not in stack:
                problems.append(
                    f"{where} admits {value!r} of account {named.account}, not this stack's "
                    f"({', '.join(sorted(stack))})"
                )
    return problems


def _stack_accounts(roles: Sequence[Resource], config: Mapping[str, Any]) -> set[str]:
    """The stack's account: `accountId` when set, and the accounts of role ARNs it reports."""
    accounts = {str(config_value(config, RULE, "accountId"))} - {""}
    for role in roles:
        arn = role.get("arn")
        if isinstance(arn, str) and (match := AWS_PRINCIPAL_ARN.match(arn)) is not None:
            accounts.add(match["account"])
    return accounts


def _trust_findings(roles: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    stack = _stack_accounts(roles, config)
    trusted = {str(a) for a in config_value(config, RULE, "trustedAccounts")}
    findings = []
    for role in roles:
        raw = role.get("assumeRolePolicy")
        if not isinstance(raw, str):
            continue  # computed in preview: judged once known
        try:
            document = mapping_of(json.loads(raw))
        except ValueError:
            findings.append(Finding("trust policy is not JSON; write it with json.dumps", role.urn))
            continue
        findings.extend(
            Finding(
                f"IAM role trust: {problem}; name the principal that needs the role by its ARN, "
                "or list an account meant to be trusted in the policy's trustedAccounts",
                role.urn,
            )
            for problem in trust_problems(document, stack, trusted)
        )
    return findings


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for wildcard data-plane permissions in the policies of inference roles, and for
    trust policies of any role that admit everyone or another account."""
    services = {str(s).lower() for s in config_value(config, RULE, "dataPlaneServices")}
    roles = {r.urn: r for r in resources if r.type == resource_types.IAM_ROLE}
    findings = _trust_findings(list(roles.values()), config)
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
    description="Inference pod roles must not hold wildcard data-plane permissions, and no "
    "role may trust everyone or another account unless it is listed.",
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
        },
        "accountId": {
            "type": "string",
            "pattern": "^([0-9]{12})?$",
            "default": "",
            "description": "the stack's AWS account: its root and identities may be trusted",
        },
        "trustedAccounts": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[0-9]{12}$"},
            "default": [],
            "description": "other accounts a role's trust may admit (explicit cross-account)",
        },
    },
)
