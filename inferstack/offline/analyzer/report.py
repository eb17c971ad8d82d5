"""Print a policy run the way `pulumi preview` prints its "Policies:" section, or as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inferstack.offline.analyzer.session import AnalysisResult

_INDENT = "    "


def render_text(result: AnalysisResult, pack_label: str) -> str:
    """The CLI's "Policies:" section: one block per pack, one entry per violation."""
    failed = bool(result.mandatory)
    mark = "❌" if failed else "✅"
    lines = [
        "Policies:",
        f"{_INDENT}{mark} {result.pack_name}@v{result.pack_version} ({pack_label})",
    ]
    for diagnostic in sorted(
        result.diagnostics, key=lambda d: (d.level != "mandatory", d.policy, d.urn)
    ):
        where = (
            f"  ({diagnostic.resource_type}: {diagnostic.resource_name})"
            if diagnostic.resource_type
            else ""
        )
        lines.append(f"{_INDENT * 2}- [{diagnostic.level}]  {diagnostic.policy}{where}")
        lines.append(f"{_INDENT * 2}  {diagnostic.description}")
        lines.extend(f"{_INDENT * 2}  {line}" for line in diagnostic.message.splitlines())
    return "\n".join(lines)


def summary(result: AnalysisResult) -> str:
    """One line: how many violations of each level, over how many resources."""
    mandatory = len(result.mandatory)
    advisory = len(result.diagnostics) - mandatory
    verdict = "failed" if mandatory else "passed"
    return (
        f"policy check {verdict}: {mandatory} mandatory and {advisory} advisory violation(s) "
        f"over {result.analyzed} resources"
    )


def as_json(result: AnalysisResult) -> list[dict[str, Any]]:
    """One object per violation, for CI annotations and scripts."""
    return [
        {
            "policy": d.policy,
            "level": d.level,
            "severity": d.severity,
            "resource_type": d.resource_type,
            "resource_name": d.resource_name,
            "urn": d.urn,
            "message": d.message,
        }
        for d in result.diagnostics
    ]
