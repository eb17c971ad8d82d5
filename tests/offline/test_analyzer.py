"""The engine emulator: marshalling, config reconciliation, and the real pack driven over gRPC."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inferstack.offline.analyzer.marshal import (
    OUTPUT_VALUE_SIG,
    RESOURCE_REF_SIG,
    SECRET_SIG,
    SIG_KEY,
    UNKNOWN_STRING,
    marshal_properties,
)
from inferstack.offline.analyzer.pack_config import (
    ConfigEntry,
    PackConfigError,
    PolicyMeta,
    load_config_file,
    parse_entries,
    reconcile,
)
from inferstack.offline.analyzer.session import (
    PackProcess,
    PolicyRunError,
    StackContext,
    analyze,
    read_pack,
)
from tests.policies import builders as b
from tests.policies.test_pack import PACK_DIR

CONTEXT = StackContext(project="cases", stack="ci", config={"kubernetes:namespace": "inference"})


def test_marshal_collapses_refs_and_output_values_and_drops_internal_keys() -> None:
    secret = {SIG_KEY: SECRET_SIG, "value": "hf_token"}
    properties = {
        "__defaults": ["name"],
        "queue": {SIG_KEY: RESOURCE_REF_SIG, "urn": "urn:q", "id": ""},
        "component": {SIG_KEY: RESOURCE_REF_SIG, "urn": "urn:c"},
        "known": {SIG_KEY: OUTPUT_VALUE_SIG, "value": 3.0, "dependencies": ["urn:x"]},
        "hidden": {SIG_KEY: OUTPUT_VALUE_SIG, "value": "s", "secret": True},
        "pending": {SIG_KEY: OUTPUT_VALUE_SIG, "dependencies": ["urn:x"]},
        "nested": [{"env": secret}],
    }
    assert marshal_properties(properties) == {
        "queue": UNKNOWN_STRING,  # a custom resource's ID is unknown in preview
        "component": "urn:c",
        "known": 3.0,
        "hidden": {SIG_KEY: SECRET_SIG, "value": "s"},
        "pending": UNKNOWN_STRING,
        "nested": [{"env": secret}],
    }


METAS = [
    PolicyMeta("a-rule", "A.", "mandatory", "high", {"limit": {"type": "integer", "default": 4}}),
    PolicyMeta("b-rule", "B.", "advisory", "low", {}),
]


def test_config_layers_apply_in_engine_order() -> None:
    initial = {"a-rule": ConfigEntry("advisory", {"limit": 6})}
    user = parse_entries({"all": "disabled", "a-rule": {"limit": 8}}, "file")
    config = reconcile(METAS, initial, user)
    # "all" overrides every level first; the policy entry then changes properties only.
    assert config["a-rule"].enforcement == "disabled"
    assert config["a-rule"].properties == {"limit": 8}
    assert config["b-rule"].enforcement == "disabled"
    assert reconcile(METAS, {}, {})["a-rule"].properties == {"limit": 4}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"a-rule": {"limit": "many"}}, "a-rule.limit: 'many' is not of type 'integer'"),
        (
            {"a-rule": {"limmit": 3}},
            "a-rule.limmit: not a setting of this policy (settings: limit)",
        ),
        ({"c-rule": "mandatory"}, "no policy named c-rule in this pack"),
        ({"a-rule": "blocking"}, "a-rule.enforcementLevel: 'blocking' is not one of"),
        ({"all": {"limit": 3}}, "all: only an enforcement level applies to every policy"),
    ],
)
def test_bad_config_names_the_field(document: dict[str, Any], expected: str) -> None:
    with pytest.raises(PackConfigError, match=None) as raised:
        reconcile(METAS, {}, parse_entries(document, "policy.json"), user_source="policy.json")
    assert expected in str(raised.value)


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text("{not json")
    with pytest.raises(PackConfigError, match="not valid JSON"):
        load_config_file(bad)
    with pytest.raises(PackConfigError, match="cannot read policy pack config"):
        load_config_file(tmp_path / "missing.json")


def violating_records() -> list[b.Record]:
    """A realtime Deployment on spot, with a secret env value, behind an explicit provider."""
    deployment = b.deployment_props()
    deployment["spec"]["template"]["spec"]["nodeSelector"] = {"karpenter.sh/capacity-type": "spot"}
    deployment["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "HF_TOKEN", "value": {SIG_KEY: SECRET_SIG, "value": "hf_secret_value"}}
    ]
    provider = b.record(
        "pulumi:providers:kubernetes", "cluster", {"namespace": "inference"}, version="4.34.2"
    )
    return [
        b.stack_record(),
        provider,
        b.record(
            "kubernetes:apps/v1:Deployment", "llm", deployment, provider=f"{provider.urn}::id-1"
        ),
        b.record("aws:sqs/queue:Queue", "jobs", {"redriveAllowPolicy": "{}"}, version="7.51.1"),
    ]


def test_real_pack_reports_violations_with_resources() -> None:
    with PackProcess(read_pack(PACK_DIR), CONTEXT) as process:
        result = analyze(process, violating_records(), CONTEXT)
    # The Deployment also runs a fixed replica count with no autoscaler: the advisory
    # gpu-capacity-follows-demand rule reports it beside the mandatory spot violation.
    violation, fixed = result.diagnostics
    assert (fixed.policy, fixed.level, fixed.resource_name) == (
        "gpu-capacity-follows-demand",
        "advisory",
        "llm",
    )
    assert [d.policy for d in result.mandatory] == ["no-spot-for-realtime"]
    assert (violation.policy, violation.level, violation.severity) == (
        "no-spot-for-realtime",
        "mandatory",
        "high",
    )
    assert (violation.resource_type, violation.resource_name) == (
        "kubernetes:apps/v1:Deployment",
        "llm",
    )
    assert violation.stage == "Analyze"
    assert "hf_secret_value" not in violation.message
    # Stack, explicit provider, Deployment, synthesized default AWS provider, queue.
    assert result.analyzed == 5
    assert result.rpc_log[0] == "Handshake: UNIMPLEMENTED (tolerated, as by the engine)"


def test_real_pack_honours_policy_pack_config() -> None:
    user = parse_entries({"all": "advisory", "inference-security": "disabled"}, "policy.json")
    with PackProcess(read_pack(PACK_DIR), CONTEXT) as process:
        result = analyze(process, violating_records(), CONTEXT, user)
    assert [(d.policy, d.level) for d in result.diagnostics] == [
        ("no-spot-for-realtime", "advisory"),
        ("gpu-capacity-follows-demand", "advisory"),
    ]
    assert result.mandatory == []


def test_pack_that_fails_to_start_reports_its_error(tmp_path: Path) -> None:
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (tmp_path / "__main__.py").write_text("raise RuntimeError('pack import exploded')\n")
    with (
        PackProcess(read_pack(tmp_path), CONTEXT) as process,
        pytest.raises(PolicyRunError, match="pack import exploded"),
    ):
        analyze(process, [b.stack_record()], CONTEXT)


def test_exception_in_a_policy_fails_the_run(tmp_path: Path) -> None:
    """As in the engine, an exception inside a policy is an error, not a violation."""
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 0.0.1\n")
    (tmp_path / "__main__.py").write_text(
        "from pulumi_policy import PolicyPack, ResourceValidationPolicy\n"
        "def boom(args, report):\n"
        "    raise KeyError('missing')\n"
        "PolicyPack('broken', [ResourceValidationPolicy('boom', 'Explodes.', boom)])\n"
    )
    with (
        PackProcess(read_pack(tmp_path), CONTEXT) as process,
        pytest.raises(PolicyRunError, match="Analyze failed"),
    ):
        analyze(process, [b.stack_record()], CONTEXT)


REMEDIATING_PACK = """
from pulumi_policy import (
    EnforcementLevel, PolicyPack, ResourceValidationPolicy, StackValidationPolicy,
)

QUEUE = "aws:sqs/queue:Queue"


def tag(args):
    if args.resource_type != QUEUE:
        return None
    props = dict(args.props)
    props["tags"] = {"team": "ml"}
    return props


def tagged(args, report):
    if args.resource_type == QUEUE and "team" not in args.props.get("tags", {}):
        report("untagged")


def stack_tagged(args, report):
    for r in args.resources:
        if r.resource_type == QUEUE and not r.props.get("tags"):
            report("untagged in stack", r.urn)


PolicyPack("fixer", [
    ResourceValidationPolicy("add-team-tag", "Tags queues.", remediate=tag,
                             enforcement_level=EnforcementLevel.REMEDIATE),
    ResourceValidationPolicy("team-tag", "Queues carry a team tag.", tagged,
                             enforcement_level=EnforcementLevel.MANDATORY),
    StackValidationPolicy("stack-team-tag", "Queues carry a team tag.", stack_tagged,
                          enforcement_level=EnforcementLevel.MANDATORY),
])
"""


def test_remediation_rewrites_inputs_before_analysis(tmp_path: Path) -> None:
    """Remediate runs first; its properties replace what Analyze and AnalyzeStack see."""
    (tmp_path / "PulumiPolicy.yaml").write_text("runtime: python\nversion: 1.2.3\n")
    (tmp_path / "__main__.py").write_text(REMEDIATING_PACK)
    queue = b.record(
        "aws:sqs/queue:Queue", "jobs", {"visibilityTimeoutSeconds": 60.0}, version="7.51.1"
    )
    with PackProcess(read_pack(tmp_path), CONTEXT) as process:
        result = analyze(process, [b.stack_record(), queue], CONTEXT)
    assert result.pack_version == "1.2.3"
    assert result.config["add-team-tag"].enforcement == "remediate"
    assert result.diagnostics == []
    assert result.remediations == [{"policy": "add-team-tag", "urn": queue.urn}]


def test_not_a_pack(tmp_path: Path) -> None:
    with pytest.raises(PolicyRunError, match="is not a policy pack"):
        read_pack(tmp_path)
    (tmp_path / "PulumiPolicy.yaml").write_text(json.dumps({"runtime": "nodejs"}))
    with pytest.raises(PolicyRunError, match="only python packs"):
        read_pack(tmp_path)
