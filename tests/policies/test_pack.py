"""The pack as the engine sees it: every rule module is in it, once, with complete metadata."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

import inferstack.policies.rules as rules_package
from inferstack.offline.analyzer.session import PackProcess, StackContext, analyze, read_pack
from inferstack.policies import pack
from inferstack.policies.rule import Rule
from inferstack.policies.rules import ALL_RULES, RULE_MODULES
from tests.policies import builders as b

PACK_DIR = Path(rules_package.__file__).resolve().parent.parent
KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)+$")


def test_every_rule_module_is_in_the_pack_under_a_unique_name() -> None:
    discovered = {
        importlib.import_module(f"{rules_package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(rules_package.__path__)
    }
    assert discovered == set(RULE_MODULES)
    names = [rule.name for rule in ALL_RULES]
    assert len(names) == len(set(names))
    # The module is named after its rule, so a reader finds one from the other.
    for module in RULE_MODULES:
        assert module.__name__.rsplit(".", 1)[-1] == module.RULE.name.replace("-", "_")


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda rule: rule.name)
def test_rule_metadata_is_complete(rule) -> None:
    assert KEBAB.match(rule.name)
    assert rule.description.endswith(".")
    assert len(rule.why) > 40
    assert len(rule.remediation) > 40
    assert rule.severity in {"low", "medium", "high", "critical"}
    assert rule.enforcement in {"advisory", "mandatory"}
    schema = {"type": "object", "properties": dict(rule.config_schema)}
    Draft7Validator.check_schema(schema)
    assert list(Draft7Validator(schema).iter_errors(rule.defaults())) == []
    module = next(m for m in RULE_MODULES if m.RULE is rule)
    assert module.__doc__
    assert module.__doc__.startswith(f"{rule.name}:")


def test_running_pack_declares_every_rule() -> None:
    """GetAnalyzerInfo from the real pack process lists exactly the rules, levels and schemas."""
    context = StackContext(project="cases", stack="ci")
    with PackProcess(read_pack(PACK_DIR), context) as process:
        result = analyze(process, [b.stack_record()], context)
    assert result.pack_name == "inferstack"
    assert result.pack_version == "0.1.0"
    declared = {meta.name: meta for meta in result.policies}
    assert list(declared) == [rule.name for rule in ALL_RULES]
    for rule in ALL_RULES:
        meta = declared[rule.name]
        assert (meta.enforcement, meta.severity, meta.description) == (
            rule.enforcement,
            rule.severity,
            rule.description,
        )
        assert set(meta.config_schema) == set(rule.config_schema)
        # The engine fills schema defaults in; numbers come back as doubles.
        assert result.config[rule.name].properties == {
            k: v for k, v in rule.defaults().items() if v is not None
        }
    assert result.diagnostics == []


def test_package_exports_and_stays_light() -> None:
    """Importing the package (as the components do for conventions) pulls in no Pulumi or gRPC."""
    import subprocess
    import sys

    import inferstack.policies

    assert set(inferstack.policies.__all__) == {
        "ALL_RULES",
        "UNKNOWN",
        "Finding",
        "Resource",
        "Rule",
    }
    probe = (
        "import sys, inferstack.policies, inferstack.contract.labels; "
        "print(sorted(m for m in ('pulumi', 'pulumi_policy', 'grpc') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize("module", RULE_MODULES, ids=lambda module: module.RULE.name)
def test_why_and_fix_are_written_once_in_the_module_docstring(module) -> None:
    """The Rule reads its why and fix from the docstring; the pack README shows that text."""
    rule = module.RULE
    assert rule.doc is module.__doc__
    unwrapped = " ".join(module.__doc__.split())
    for text in (rule.why, rule.remediation):
        assert text[1:60] in unwrapped
    assert unwrapped.index("Why: ") < unwrapped.index("Fix: ")
    readme = pack.readme([rule])
    assert f"Why: {rule.why}" in readme
    assert f"Fix: {rule.remediation}" in readme


def test_a_rule_without_why_or_fix_is_refused() -> None:
    def check(resource, config):
        return []

    doc = "some-rule: a summary.\n\nWhy: it matters, for reasons.\n\nFix: do this."
    rule = Rule("some-rule", "A summary.", doc, "low", "advisory", check_resource=check)
    assert (rule.why, rule.remediation) == ("It matters, for reasons.", "Do this.")
    for broken in (doc.replace("Why:", "So:"), doc.replace("\n\nFix: do this.", ""), None):
        with pytest.raises(ValueError, match="some-rule"):
            Rule("some-rule", "A summary.", broken, "low", "advisory", check_resource=check)
    with pytest.raises(ValueError, match="must start with"):
        Rule("other-rule", "A summary.", doc, "low", "advisory", check_resource=check)
