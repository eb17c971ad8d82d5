"""`inferstack schema`: every shipped stack file validates; a bad one fails naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from inferstack.cli import main
from inferstack.offline.schema import stack_file_schema
from inferstack.offline.stack_config import CONFIG_KEYS, NAMESPACE, config_models

REPO = Path(__file__).resolve().parents[2]
STACK_FILES = sorted((REPO / "stacks").glob("Pulumi.*.yaml"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = stack_file_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _stack(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "stacks" / f"Pulumi.{name}.yaml").read_text())
    return document


def _errors(validator: Draft202012Validator, document: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        ("/".join(str(part) for part in error.absolute_path), error.message)
        for error in validator.iter_errors(document)
    ]


def test_the_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(stack_file_schema()))


def test_every_key_the_reader_reads_is_in_the_schema() -> None:
    config = stack_file_schema()["properties"]["config"]["properties"]
    assert set(config) == {f"{NAMESPACE}:{key}" for key in CONFIG_KEYS}
    assert set(config_models()) < set(config)


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda path: path.stem)
def test_every_shipped_stack_file_validates(validator: Draft202012Validator, path: Path) -> None:
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


def test_the_shipped_stacks_are_all_here() -> None:
    assert {path.stem for path in STACK_FILES} >= {
        "Pulumi.dev",
        "Pulumi.aws-prod",
        "Pulumi.gcp-prod",
        "Pulumi.scale-to-zero",
    }


def test_an_unknown_option_fails_naming_it(validator: Draft202012Validator) -> None:
    document = _stack("aws-prod")
    document["config"]["inferstack:aws"]["zone"] = "us-east-1a"
    [(path, message)] = _errors(validator, document)
    assert path == "config/inferstack:aws"
    assert "'zone'" in message


def test_a_wrong_type_fails_naming_the_field(validator: Draft202012Validator) -> None:
    document = _stack("dev")
    document["config"]["inferstack:service"]["latency_budget_ms"] = "fast"
    document["config"]["inferstack:kubernetes"]["port"] = [8000]
    paths = {path for path, _ in _errors(validator, document)}
    assert paths == {
        "config/inferstack:service/latency_budget_ms",
        "config/inferstack:kubernetes/port",
    }


def test_an_unknown_inferstack_key_fails_and_other_namespaces_pass(
    validator: Draft202012Validator,
) -> None:
    document = _stack("gcp-prod")
    document["config"]["inferstack:gpc"] = {"project": "typo"}
    document["config"]["gcp:project"] = "acme-inference-prod"
    document["config"]["inferstack:target"] = "gcp"
    [(path, _)] = _errors(validator, document)
    assert path == "config/inferstack:gpc"


def test_a_target_that_does_not_exist_fails(validator: Draft202012Validator) -> None:
    document = _stack("dev")
    document["config"]["inferstack:target"] = "azure"
    [(path, message)] = _errors(validator, document)
    assert path == "config/inferstack:target"
    assert "'azure'" in message
