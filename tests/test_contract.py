"""The contract: each shared fact defined once, and every consumer tied to that definition."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from inferstack.components.kubernetes.bindings import KubernetesBindings, queue_uri
from inferstack.components.kubernetes.options import KubernetesOptions, QueueBinding
from inferstack.contract import (
    clouds,
    env,
    labels,
    metrics,
    pods,
    queues,
    resource_types,
    thresholds,
)
from inferstack.contract.images import ImageReference, ImageReferenceError, has_digest, parse_image
from inferstack.contract.queues import QueueUriError, parse_queue_uri
from inferstack.runtime.server.settings import ServerSettings
from inferstack.runtime.settings import env_vars
from inferstack.runtime.worker.settings import WorkerSettings
from tests.components.factories import make_spec

REPO = Path(__file__).resolve().parent.parent
CONSUMER_FOLDERS = ("components", "runtime", "policies", "inferstack", "stacks")
SHARED_MODULES = (clouds, env, labels, metrics, pods, resource_types)
"""Modules whose string values no other module may spell (thresholds are numbers; queue URI
forms live with their builder)."""


# ---------------------------------------------------------------------------------------------
# One definition per fact


def _shared_strings() -> dict[str, str]:
    found: dict[str, str] = {}
    for module in SHARED_MODULES:
        for name, value in vars(module).items():
            # Setting names and outcome labels are identifiers in the code that reads them.
            if name.startswith("_") or name in {"PREFIX", "ENV_PREFIX", "WORKER_OUTCOMES"}:
                continue
            if name.endswith("_SETTINGS"):
                continue
            values: list[Any] = [value]
            if isinstance(value, frozenset | tuple | dict):
                values = list(value)
            for item in values:
                if isinstance(item, clouds.SpotLabel):
                    found.setdefault(item.key, f"{module.__name__}.SPOT_LABELS")
                elif isinstance(item, str) and ("/" in item or "_" in item or "." in item):
                    found.setdefault(item, f"{module.__name__}.{name}")
    return found


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    strings = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            strings.append((node.lineno, node.value))
    return strings


def test_no_module_outside_the_contract_spells_a_shared_string() -> None:
    shared = _shared_strings()
    assert len(shared) > 40  # the scan sees the contract
    offenders = []
    for folder in CONSUMER_FOLDERS:
        for path in (REPO / folder).rglob("*.py"):
            if "contract" in path.relative_to(REPO).parts:
                continue
            if "generated" in path.relative_to(REPO).parts:
                continue  # protoc's output; tests/runtime/test_grpc_generated.py ties it to ours.
            for line, value in _string_constants(path):
                if value in shared:
                    offenders.append(f"{path.relative_to(REPO)}:{line} {value!r} ({shared[value]})")
    assert offenders == [], "import these from inferstack.contract instead:\n" + "\n".join(
        offenders
    )


# ---------------------------------------------------------------------------------------------
# Env: the names the components write are settings of the process that reads them


@pytest.mark.parametrize(
    ("written", "model"),
    [(env.SERVE_SETTINGS, ServerSettings), (env.WORK_SETTINGS, WorkerSettings)],
)
def test_components_write_only_settings_of_the_process(written: frozenset[str], model: Any) -> None:
    assert written <= set(model.model_fields), written - set(model.model_fields)
    assert {env.env_name(name) for name in written} <= set(env_vars(model).values())


def test_every_env_constant_follows_the_one_rule() -> None:
    fields = set(ServerSettings.model_fields) | set(WorkerSettings.model_fields)
    for name, value in vars(env).items():
        if name.startswith("ENV_") and name not in {"ENV_PREFIX", "ENV_CONFIG"}:
            setting = value.removeprefix(env.ENV_PREFIX).lower()
            assert setting in fields, f"{name} = {value!r} is no setting of serve or work"
            assert env.env_name(setting) == value


# ---------------------------------------------------------------------------------------------
# Queue URIs: the components' builder and the worker's parser agree


@pytest.mark.parametrize(
    ("queue", "binding", "expected"),
    [
        ({"kind": "sqs", "name": "jobs"}, {"aws_region": "us-east-1"}, ("sqs", "jobs", None)),
        (
            {"kind": "sqs"},
            {"url": "https://sqs.us-east-1.amazonaws.com/1/q", "aws_region": "us-east-1"},
            ("sqs", "https://sqs.us-east-1.amazonaws.com/1/q", None),
        ),
        ({"kind": "pubsub", "name": "sub"}, {"gcp_project": "proj-1"}, ("pubsub", "sub", "proj-1")),
        (
            {"kind": "redis-streams", "redis_address": "redis.infra:6379"},
            {},
            ("redis-streams", "embedder-jobs", None),
        ),
    ],
)
def test_queue_uri_round_trips(
    queue: dict[str, Any], binding: dict[str, Any], expected: tuple[str, str, str | None]
) -> None:
    pool = {"gpu": {"type": "nvidia-l4"}, "queue": queue, "scaling": {"max_replicas": 2}}
    spec = make_spec(batch=pool)
    options = KubernetesOptions(queue=QueueBinding(results_uri="file:///r", **binding))
    uri = queue_uri(spec, KubernetesBindings.from_options(options))
    address = parse_queue_uri(uri)
    assert (address.kind, address.name, address.gcp_project) == expected
    if address.kind == "redis-streams":
        assert address.redis_address == "redis.infra:6379"
    assert uri.partition("://")[0] in queues.SCHEMES


@pytest.mark.parametrize(
    "uri",
    ["", "sqs://", "kafka://x", "pubsub://projects/p", "redis://h:1/0", "redis://h:1/x?stream=s"],
)
def test_bad_queue_uris_name_the_expected_form(uri: str) -> None:
    with pytest.raises(QueueUriError, match="queue URI"):
        parse_queue_uri(uri)


def test_thresholds_are_the_pack_defaults() -> None:
    from inferstack.policies.rules import bounded_gpu_capacity, queue_delay_within_budget

    share = queue_delay_within_budget.RULE.config_schema["maxQueueDelayShare"]["default"]
    assert share == thresholds.MAX_QUEUE_DELAY_SHARE
    schema = bounded_gpu_capacity.RULE.config_schema
    assert schema["maxGpuReplicas"]["default"] == thresholds.MAX_GPU_REPLICAS
    assert schema["maxGpuNodes"]["default"] == thresholds.MAX_GPU_NODES


def test_image_references_split_into_repository_tag_and_digest() -> None:
    digest = "sha256:" + "f" * 64
    assert parse_image(f"ghcr.io/x/runtime:0.1.0@{digest}") == ImageReference(
        "ghcr.io/x/runtime", "0.1.0", digest
    )
    assert parse_image("localhost:5000/runtime") == ImageReference(
        "localhost:5000/runtime", None, None
    )
    assert has_digest(f"runtime@{digest}")
    assert not has_digest("runtime:0.1.0")
    assert not has_digest("not an image@" + digest)
    with pytest.raises(ImageReferenceError, match="not an image reference of the form"):
        parse_image("runtime:tag@sha256:short")
