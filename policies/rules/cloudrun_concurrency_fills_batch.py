"""cloudrun-concurrency-fills-batch: a batching GPU service admits at least one batch at a time.

Why: Cloud Run sends an instance at most `maxInstanceRequestConcurrency` requests at once. Below
the runtime's batch size (`INFERSTACK_MAX_BATCH_SIZE`), and at 1 above all, the batcher can
never fill a batch: every request waits out the queue delay and runs alone, so the GPU serves a
fraction of its batched throughput and Cloud Run adds instances for load one could carry.

Fix: set `template.maxInstanceRequestConcurrency` to at least the batch size: the Cloud Run
target derives it from the batcher model's in-flight requests over Cloud Run's 60 % concurrency
target (`inferstack preview` prints the value and its reason).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.policies import cloudrun
from inferstack.policies.resources import Finding, Resource, as_number, get_path
from inferstack.policies.rule import Rule


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for batching GPU services whose concurrency is below one batch."""
    findings = []
    for service in cloudrun.gpu_services(resources):
        batch = cloudrun.max_batch_size(service)
        concurrency = as_number(get_path(service.props, "template.maxInstanceRequestConcurrency"))
        if batch is None or batch <= 1 or concurrency is None:
            continue
        if concurrency < batch:
            findings.append(
                Finding(
                    f"GPU service {service.name}: concurrency {concurrency:g} per instance is "
                    f"below its batch of {batch:g}; the batcher can never fill a batch",
                    service.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="cloudrun-concurrency-fills-batch",
    description="A batching Cloud Run GPU service must admit at least one batch per instance.",
    doc=__doc__,
    severity="medium",
    enforcement="mandatory",
    check_stack=check,
)
