"""The CEL rules of the Managed Prometheus PodMonitoring CRD (tests/components/crds/), as Python.

`tests/components/schemas.py` refuses a CRD with a rule it cannot evaluate; these are the rules of
`monitoring.googleapis.com_podmonitorings.yaml`, one function each, translated literally (CEL
semantics: `has` is key presence, durations compare as durations).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

CelCheck = Callable[[Any], bool]
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
PROTECTED_TARGET_LABELS = frozenset(
    {
        "project_id",
        "location",
        "cluster",
        "namespace",
        "job",
        "instance",
        "top_level_controller",
        "top_level_controller_type",
        "__address__",
    }
)
"""The target labels PodMonitoring's `targetLabels.fromPod[].to` may not name (its CEL rule)."""


def _seconds(duration: str) -> float:
    parts = _DURATION.findall(duration)
    assert "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _is_url(value: Any) -> bool:
    parsed = urlparse(str(value))
    return bool(parsed.scheme and parsed.netloc)


def _no_secret_namespace(field: str, *path: str) -> CelCheck:
    def check(obj: Any) -> bool:
        for endpoint in obj.get("spec", {}).get("endpoints", []):
            node = endpoint.get(field)
            for key in (*path, "secret"):
                if not isinstance(node, dict) or key not in node:
                    node = None
                    break
                node = node[key]
            if isinstance(node, dict) and "namespace" in node:
                return False
        return True

    return check


_PROTECTED = (
    "self != 'project_id' && self != 'location' && self != 'cluster' && self != 'namespace' && "
    "self != 'job' && self != 'instance' && self != 'top_level_controller' && "
    "self != 'top_level_controller_type' && self != '__address__'"
)
_SECRET = "self.spec.endpoints.all(e, !has(e.{f}) || !has(e.{f}.{p}) || !has(e.{f}.{p}.secret) || !has(e.{f}.{p}.secret.__namespace__))"  # noqa: E501

RULES: dict[str, CelCheck] = {
    "!has(self.action) ||  self.action != 'labeldrop' || has(self.regex)": lambda o: (
        o.get("action") != "labeldrop" or "regex" in o
    ),
    "!has(self.timeout) || self.timeout <= self.interval": lambda o: (
        "timeout" not in o or _seconds(o["timeout"]) <= _seconds(o["interval"])
    ),
    "((has(self.authorization) ? 1 : 0) + (has(self.basicAuth) ? 1 : 0) + (has(self.oauth2) ? 1 "
    ": 0)) <= 1": lambda o: sum(key in o for key in ("authorization", "basicAuth", "oauth2")) <= 1,
    "has(self.cert) == has(self.key)": lambda o: ("cert" in o) == ("key" in o),
    "isURL(self) && !self.matches('@')": lambda s: _is_url(s) and "@" not in str(s),
    "self != 'Basic'": lambda s: s != "Basic",
    _PROTECTED: lambda s: s not in PROTECTED_TARGET_LABELS,
    "self != 0": lambda n: n != 0,
    _SECRET.format(f="authorization", p="credentials"): _no_secret_namespace(
        "authorization", "credentials"
    ),
    _SECRET.format(f="basicAuth", p="password"): _no_secret_namespace("basicAuth", "password"),
    _SECRET.format(f="oauth2", p="clientSecret"): _no_secret_namespace("oauth2", "clientSecret"),
    _SECRET.format(f="tls", p="ca"): _no_secret_namespace("tls", "ca"),
    _SECRET.format(f="tls", p="cert"): _no_secret_namespace("tls", "cert"),
    _SECRET.format(f="tls", p="key"): _no_secret_namespace("tls", "key"),
}


def rule_check(rule: str) -> CelCheck | None:
    """The Python check of one PodMonitoring CEL rule, or None."""
    return RULES.get(rule)
