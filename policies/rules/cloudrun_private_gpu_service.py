"""cloudrun-private-gpu-service: no Cloud Run GPU service is invocable by anyone on the internet.

Why: `roles/run.invoker` granted to `allUsers` (or `allAuthenticatedUsers`), or the invoker IAM
check disabled, lets anyone with the URL run inference on a GPU billed by the second: the one
key that limits abuse is the maximum instance count. A public GPU endpoint should be a decision,
not a default.

Fix: grant `roles/run.invoker` on the service to the callers' identities (a gateway's service
account) and leave `invokerIamDisabled` unset; where the service is public on purpose
(`inferstack:cloudrun.public: true`), accept this warning knowingly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.policies import cloudrun
from inferstack.policies.resources import UNKNOWN, Finding, Resource, is_true, list_of
from inferstack.policies.rule import Rule


def _members(binding: Resource) -> list[str]:
    if binding.type == cloudrun.SERVICE_IAM_MEMBER:
        return [str(binding.get("member"))]
    return [str(member) for member in list_of(binding.get("members"))]


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for public invokers on GPU services (or on a service whose name is unknown)."""
    services = cloudrun.gpu_services(resources)
    names = {service.get("name") for service in services}
    findings = [
        Finding(f"GPU service {s.name}: invokerIamDisabled lets anyone invoke it", s.urn)
        for s in services
        if is_true(s.get("invokerIamDisabled"))
    ]
    for binding in resources:
        if binding.type not in (cloudrun.SERVICE_IAM_MEMBER, cloudrun.SERVICE_IAM_BINDING):
            continue
        if binding.get("role") != cloudrun.NAMES.invoker_role:
            continue
        public = sorted(set(_members(binding)) & cloudrun.PUBLIC_MEMBERS)
        target = binding.get("name")
        if public and (target in names or target is UNKNOWN or target is None):
            findings.append(
                Finding(
                    f"{binding.name}: {', '.join(public)} may invoke GPU service {target}; grant "
                    "the invoker role to the callers' identities instead",
                    binding.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="cloudrun-private-gpu-service",
    description="Cloud Run GPU services should not be invocable by allUsers.",
    doc=__doc__,
    severity="high",
    enforcement="advisory",
    check_stack=check,
)
