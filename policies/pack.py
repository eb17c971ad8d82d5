"""Turn the rules into CrossGuard policies: the only module that touches `pulumi_policy`.

The SDK hands policies unknown-checking proxies: reading a value that is unknown in preview
raises `UnknownValueError`, which in a stack policy aborts the policy for the whole stack. The
adapters copy the properties into plain data first, with unknowns as `UNKNOWN`, so each rule
decides per value what an unknown means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from inferstack.policies.resources import UNKNOWN, Resource
from inferstack.policies.rule import Rule
from inferstack.policies.rules import ALL_RULES

PACK_NAME: Final = "inferstack"

_ENFORCEMENT: Final = {
    "advisory": EnforcementLevel.ADVISORY,
    "mandatory": EnforcementLevel.MANDATORY,
    "remediate": EnforcementLevel.REMEDIATE,
    "disabled": EnforcementLevel.DISABLED,
}
_SEVERITY: Final = {
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


def plain(value: Any) -> Any:
    """A deep copy of SDK property proxies as dicts and lists, unknowns replaced by `UNKNOWN`."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        copied: dict[str, Any] = {}
        for key in value:
            try:
                copied[key] = plain(value[key])
            except UnknownValueError:
                copied[key] = UNKNOWN
        return copied
    if isinstance(value, Sequence):
        items: list[Any] = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def _from_validation_args(args: ResourceValidationArgs) -> Resource:
    return Resource(type=args.resource_type, name=args.name, urn=args.urn, props=plain(args.props))


def _from_policy_resource(resource: PolicyResource) -> Resource:
    return Resource(
        type=resource.resource_type,
        name=resource.name,
        urn=resource.urn,
        props=plain(resource.props),
        parent=resource.parent.urn if resource.parent is not None else "",
        dependencies=tuple(dep.urn for dep in resource.dependencies),
        property_dependencies={
            key: tuple(dep.urn for dep in deps)
            for key, deps in resource.property_dependencies.items()
        },
    )


def to_policy(rule: Rule) -> Policy:
    """The CrossGuard policy for one rule, with its metadata, level, severity and schema."""
    common: dict[str, Any] = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": _ENFORCEMENT[rule.enforcement],
        "severity": _SEVERITY[rule.severity],
        "remediation_steps": rule.remediation,
        "tags": ["inferstack", rule.kind],
        "config_schema": (
            PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})
            if rule.config_schema
            else None
        ),
    }
    if rule.check_resource is not None:
        check_resource = rule.check_resource

        def validate_resource(args: ResourceValidationArgs, report: ReportViolation) -> None:
            for message in check_resource(_from_validation_args(args), args.get_config()):
                report(message, None)

        return ResourceValidationPolicy(validate=validate_resource, **common)

    assert rule.check_stack is not None
    check_stack = rule.check_stack

    def validate_stack(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [_from_policy_resource(resource) for resource in args.resources]
        for finding in check_stack(resources, args.get_config()):
            report(finding.message, finding.urn or None)

    return StackValidationPolicy(validate=validate_stack, **common)


def readme(rules: Sequence[Rule] = ALL_RULES) -> str:
    """The pack README the engine shows: each rule, why it matters and how to fix it."""
    sections = [
        f"## {rule.name} ({rule.enforcement}, {rule.severity})\n\n{rule.description}\n\n"
        f"Why: {rule.why}\n\nFix: {rule.remediation}"
        for rule in rules
    ]
    return "# inferstack policy pack\n\n" + "\n\n".join(sections) + "\n"


def policies(rules: Sequence[Rule] = ALL_RULES) -> list[Policy]:
    """Every rule as a CrossGuard policy, in pack order."""
    return [to_policy(rule) for rule in rules]
