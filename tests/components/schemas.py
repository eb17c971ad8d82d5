"""Strict schema validation of rendered objects: Kubernetes (pinned minor), KEDA and Karpenter.

Kubernetes objects go through `kubernetes-validate` in strict mode. KEDA objects go through the
CRDs in ../shared/schemas/keda/, converted to JSON Schema the way the API server reads them:
`additionalProperties: false` wherever the CRD does not set `x-kubernetes-preserve-unknown-fields`
(so an unknown field fails, as `kubectl --validate=strict` reports it), `x-kubernetes-int-or-string`
as integer-or-string, and the CRDs' CEL rules (`x-kubernetes-validations`) translated one by one:
an untranslated rule raises instead of being skipped. Karpenter's NodePool and EC2NodeClass go
through the CRDs in ../shared/schemas/karpenter/ the same way (their CEL rules are translated in
`tests/components/karpenter_cel.py`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from inferstack.offline.capture import integral_floats_to_int
from tests.components import monitoring_cel
from tests.components.karpenter_cel import rule_check
from tests.shared_data import KARPENTER_SCHEMAS, KEDA_SCHEMAS, SCHEMAS, require

KUBERNETES_VERSION = "1.33.0"
"""The pinned Kubernetes minor: the oldest minor still in standard support on EKS and GKE."""
SCHEMAS_DIR = SCHEMAS
KEDA_SCHEMA_DIR = KEDA_SCHEMAS
KARPENTER_SCHEMA_DIR = KARPENTER_SCHEMAS

CRD_FILES = {
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh", "ScaledJob"): "keda.sh_scaledjobs.yaml",
    ("keda.sh", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
    ("keda.sh", "ClusterTriggerAuthentication"): "keda.sh_clustertriggerauthentications.yaml",
    ("http.keda.sh", "HTTPScaledObject"): "http.keda.sh_httpscaledobjects.yaml",
    ("http.keda.sh", "InterceptorRoute"): "http.keda.sh_interceptorroutes.yaml",
    ("karpenter.sh", "NodePool"): "karpenter.sh_nodepools.yaml",
    ("karpenter.k8s.aws", "EC2NodeClass"): "karpenter.k8s.aws_ec2nodeclasses.yaml",
}
KARPENTER_GROUPS = frozenset({"karpenter.sh", "karpenter.k8s.aws"})
MONITORING_CRDS = Path(__file__).parent / "crds"
"""Scrape-object CRDs vendored in the repository (see crds/README.md for their sources)."""
MONITORING_CRD_FILES = {
    ("monitoring.googleapis.com", "PodMonitoring"): "monitoring.googleapis.com_podmonitorings.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
}
MONITORING_GROUPS = frozenset(group for group, _ in MONITORING_CRD_FILES)

WIRE_TYPE_PREFIX = "kubernetes:"


class SchemaMissing(Exception):
    """A schema file the tests need is not there."""


def require_schema_dir(folder: Path = KEDA_SCHEMA_DIR) -> Path:
    """A CRD schema folder; in CI a missing folder fails the test, elsewhere it skips."""
    require(folder.is_dir(), f"CRDs not found at {folder} (../shared/schemas/{folder.name}/)")
    return folder


# ---------------------------------------------------------------------------------------------
# Wire form -> manifest


def manifest_from_wire(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The object `pulumi up` would send to the API server for one registered resource."""
    assert resource_type.startswith(WIRE_TYPE_PREFIX), resource_type
    manifest = integral_floats_to_int(copy.deepcopy(inputs))
    group_version, kind = resource_type[len(WIRE_TYPE_PREFIX) :].rsplit(":", 1)
    api_version = group_version.removeprefix("core/")
    assert manifest.get("kind") == kind, (manifest.get("kind"), kind)
    assert manifest.get("apiVersion") == api_version, (manifest.get("apiVersion"), api_version)
    return dict(manifest)


# ---------------------------------------------------------------------------------------------
# Kubernetes


def validate_kubernetes(manifest: dict[str, Any]) -> None:
    """Strict validation against the pinned Kubernetes schema; raises on any problem."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


# ---------------------------------------------------------------------------------------------
# KEDA CRDs

CelCheck = Callable[[dict[str, Any]], bool]
CEL_RULES: dict[str, CelCheck] = {
    "has(self.port) != has(self.portName)": lambda o: ("port" in o) != ("portName" in o),
    "has(self.portName) != has(self.port)": lambda o: ("port" in o) != ("portName" in o),
    "has(self.fallback) || has(self.placeholder)": lambda o: "fallback" in o or "placeholder" in o,
    "has(self.concurrency) || has(self.requestRate)": lambda o: (
        "concurrency" in o or "requestRate" in o
    ),
    "!(has(self.body) && has(self.bodyFromConfigMap))": lambda o: (
        not ("body" in o and "bodyFromConfigMap" in o)
    ),
    "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? "
    "self.maxReplicaCount : 100)": lambda o: (
        "minReplicaCount" not in o or o["minReplicaCount"] <= o.get("maxReplicaCount", 100)
    ),
}
"""The CEL rules of the shipped KEDA CRDs, as Python. A new rule in a CRD must be added here."""


def cel_check(rule: str) -> CelCheck | None:
    """The Python check of a CEL rule of any shipped CRD (KEDA here, Karpenter by pattern)."""
    return CEL_RULES.get(rule) or rule_check(rule) or monitoring_cel.rule_check(rule)


class CelRuleUnknown(Exception):
    """A CRD carries a CEL rule this validator cannot evaluate."""


def _ignored(key: str, schema: dict[str, Any]) -> bool:
    """Documentation, defaults and formats do not constrain; int-or-string replaces `type`."""
    if key == "type":
        return bool(schema.get("x-kubernetes-int-or-string"))
    return key.startswith("x-kubernetes-") or key in {"description", "default", "format"}


def _structural(schema: dict[str, Any], path: str, rules: list[tuple[str, str, str]]) -> Any:
    """A JSON Schema from an openAPIV3Schema node, closed unless the CRD preserves unknowns."""
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            result["properties"] = {
                name: _structural(child, f"{path}.{name}", rules) for name, child in value.items()
            }
        elif key == "items":
            result["items"] = _structural(value, f"{path}[]", rules)
        elif key == "additionalProperties" and isinstance(value, dict):
            result["additionalProperties"] = _structural(value, f"{path}.*", rules)
        elif key in {"anyOf", "oneOf", "allOf"}:
            result[key] = [_structural(item, path, rules) for item in value]
        elif key == "x-kubernetes-validations":
            for rule in value:
                if cel_check(rule["rule"]) is None:
                    raise CelRuleUnknown(f"{path}: {rule['rule']!r}; add it to CEL_RULES")
                rules.append((path, rule["rule"], rule.get("message", "")))
            result["x-cel"] = [rule["rule"] for rule in value]
        elif key == "x-kubernetes-int-or-string":
            result.pop("type", None)
            result["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif not _ignored(key, schema):
            result[key] = value
    preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
    if schema.get("type") == "object" and not preserve and "additionalProperties" not in schema:
        result["additionalProperties"] = False
    return result


def _cel_keyword(validator: Any, rules: list[str], instance: Any, schema: Any) -> Any:
    # A rule's `self` is whatever its node holds: an object, a list (Karpenter's requirements,
    # selector terms) or a string (a requirement's key, an AMI alias).
    for rule in rules:
        check = cel_check(rule)
        assert check is not None
        if not check(instance):
            yield jsonschema.ValidationError(f"CEL rule failed: {rule}")


_CelValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"x-cel": _cel_keyword}
)


@cache
def _object_meta_schema() -> dict[str, Any]:
    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    path = folder / f"v{KUBERNETES_VERSION}-local-strict" / "objectmeta-meta-v1.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


@cache
def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The closed JSON Schema of one CRD version; raises SchemaMissing if the file is absent."""
    if group in MONITORING_GROUPS:
        path = MONITORING_CRDS / MONITORING_CRD_FILES[(group, kind)]
    else:
        folder = require_schema_dir(
            KARPENTER_SCHEMA_DIR if group in KARPENTER_GROUPS else KEDA_SCHEMA_DIR
        )
        path = folder / CRD_FILES[(group, kind)]
    if not path.exists():
        raise SchemaMissing(str(path))
    crd = yaml.safe_load(path.read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            rules: list[tuple[str, str, str]] = []
            schema = _structural(entry["schema"]["openAPIV3Schema"], kind, rules)
            # ObjectMeta is validated by the API server itself, not by the CRD: use its schema.
            schema["properties"]["metadata"] = _object_meta_schema()
            return dict(schema)
    raise SchemaMissing(f"{path} has no version {version}")


def validate_crd(manifest: dict[str, Any]) -> None:
    """Strict validation of a KEDA, KEDA HTTP add-on, Karpenter or scrape object (PodMonitor,
    PodMonitoring) against its CRD."""
    group, version = manifest["apiVersion"].split("/")
    schema = crd_schema(group, manifest["kind"], version)
    errors = sorted(_CelValidator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(
            f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors
        )
        raise jsonschema.ValidationError(f"{manifest['kind']} {details}")


validate_keda = validate_crd


def is_karpenter(manifest: dict[str, Any]) -> bool:
    """True for objects of Karpenter's API groups (NodePool, EC2NodeClass)."""
    return str(manifest.get("apiVersion", "")).split("/")[0] in KARPENTER_GROUPS


def is_keda(manifest: dict[str, Any]) -> bool:
    """True for objects of the KEDA and KEDA HTTP add-on API groups."""
    group = str(manifest.get("apiVersion", "")).split("/")[0]
    return group in {"keda.sh", "http.keda.sh"}


def is_scrape_object(manifest: dict[str, Any]) -> bool:
    """True for PodMonitor (Prometheus Operator) and PodMonitoring (Managed Prometheus)."""
    return str(manifest.get("apiVersion", "")).split("/")[0] in MONITORING_GROUPS


def validate(manifest: dict[str, Any]) -> None:
    """Validate any rendered object with the right schema."""
    if is_keda(manifest) or is_karpenter(manifest) or is_scrape_object(manifest):
        validate_crd(manifest)
    else:
        validate_kubernetes(manifest)
