"""cloudrun-bounded-gpu-service: a Cloud Run GPU service has an explicit, sane maximum.

Why: a Cloud Run GPU instance bills for its whole lifecycle, and a service without a maximum
instance count may scale to the project's GPU quota on a retry storm or a bot: an unbounded bill.
A worker pool's manual instance count past the ceiling is the same bill, idle or not.

Fix: set `template.scaling.maxInstanceCount` (or the service-level `scaling.maxInstanceCount`) to
the peak the service was sized for, within the pack's ceiling (`maxGpuReplicas`), and keep a GPU
worker pool's `scaling.manualInstanceCount` within it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.contract.thresholds import MAX_GPU_REPLICAS
from inferstack.policies import cloudrun
from inferstack.policies.resources import Finding, Resource, as_number, get_path
from inferstack.policies.rule import Rule, config_value


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for GPU services without a maximum, or past the ceiling."""
    ceiling = float(config_value(config, RULE, "maxGpuReplicas"))
    findings = []
    for service in cloudrun.gpu_services(resources):
        maxima = [
            as_number(get_path(service.props, "template.scaling.maxInstanceCount")),
            as_number(get_path(service.props, "scaling.maxInstanceCount")),
        ]
        known = [value for value in maxima if value is not None]
        if not known:
            findings.append(
                Finding(
                    f"GPU service {service.name}: no maximum instance count; set "
                    "template.scaling.maxInstanceCount to the sized peak",
                    service.urn,
                )
            )
        elif min(known) > ceiling:
            findings.append(
                Finding(
                    f"GPU service {service.name}: maximum {min(known):g} instances is past the "
                    f"ceiling {ceiling:g} (maxGpuReplicas); lower it or raise the ceiling "
                    "knowingly",
                    service.urn,
                )
            )
    for pool in resources:
        if pool.type != cloudrun.WORKER_POOL or not cloudrun.has_gpu(pool):
            continue
        count = as_number(get_path(pool.props, "scaling.manualInstanceCount"))
        if count is not None and count > ceiling:
            findings.append(
                Finding(
                    f"GPU worker pool {pool.name}: {count:g} manual instances is past the "
                    f"ceiling {ceiling:g} (maxGpuReplicas)",
                    pool.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="cloudrun-bounded-gpu-service",
    description="Cloud Run GPU services must have an explicit maximum instance count.",
    doc=__doc__,
    severity="high",
    enforcement="mandatory",
    check_stack=check,
    config_schema={
        "maxGpuReplicas": {
            "type": "integer",
            "minimum": 1,
            "default": MAX_GPU_REPLICAS,
            "description": "largest allowed maximum instance count of one Cloud Run GPU service",
        },
    },
)
