"""A container's env as the kubelet hands it to the process, Downward API values included.

`resourceFieldRef` values are computed the kubelet's way (kubernetes/kubernetes,
pkg/api/v1/resource/helpers.go, `ExtractContainerResourceValue` and
`convertResourceCPUToString`: the container's CPU in millicores over the divisor's, rounded up
with math.Ceil; no divisor means 1), so a test reads what the runtime would read in the pod.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

_SUFFIXES = {"m": Decimal("0.001"), "": Decimal(1), "k": Decimal(1000)}


def cpu_millis(quantity: str) -> int:
    """A CPU quantity (`3`, `1.5`, `500m`) in millicores, rounded up like `MilliValue`."""
    number = quantity.rstrip("mk")
    scale = _SUFFIXES[quantity[len(number) :]]
    return math.ceil(Decimal(number) * scale * 1000)


def resource_field(container: dict[str, Any], ref: dict[str, Any]) -> str:
    """The value the kubelet gives a `resourceFieldRef` on `container` (CPU fields only)."""
    assert ref["containerName"] == container["name"], ref  # the API refuses another name
    kind, resource = ref["resource"].split(".")
    assert resource == "cpu", ref
    millis = cpu_millis(container["resources"].get(kind, {}).get("cpu", "0"))
    return str(math.ceil(millis / cpu_millis(ref.get("divisor", "1"))))


def resolved_env(container: dict[str, Any]) -> dict[str, str]:
    """Name to value of every env var, `valueFrom.resourceFieldRef` ones computed as above."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = resource_field(container, item["valueFrom"]["resourceFieldRef"])
    return env
