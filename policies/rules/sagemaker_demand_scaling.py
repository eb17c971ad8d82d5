"""sagemaker-demand-scaling: SageMaker capacity follows demand, not CPU or GPU utilisation alone.

Why: utilisation is a supply signal. A batching server keeps its GPU busy at any load it can
carry, so a target on GPUUtilization either never scales out before the latency budget is gone
or holds idle instances at night; CPUUtilization of a GPU server says less still. AWS's own
guidance for inference components scales on the concurrent requests per copy (high resolution)
and for asynchronous endpoints on the backlog per instance ("Define a scaling policy",
https://docs.aws.amazon.com/sagemaker/latest/dg/endpoint-auto-scaling-add-code-define.html).

Fix: give the scalable target a target-tracking policy on a demand metric:
`SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution` (or
`...InvocationsPerCopy`), `SageMakerVariantConcurrentRequestsPerModelHighResolution` (or
`...InvocationsPerInstance`), or `ApproximateBacklogSizePerInstance` for an async endpoint.
Utilisation policies may stay beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from inferstack.policies import sagemaker
from inferstack.policies.resources import Finding, Resource
from inferstack.policies.rule import Rule

_NAMES = sagemaker.NAMES
DEMAND_METRICS: Final = frozenset(
    {
        (_NAMES.metric_namespace, _NAMES.concurrency_per_copy),
        (_NAMES.metric_namespace, _NAMES.concurrency_per_model),
        (_NAMES.metric_namespace, _NAMES.invocations_per_copy),
        (_NAMES.metric_namespace, _NAMES.invocations_per_instance),
        (_NAMES.metric_namespace, _NAMES.backlog_per_instance),
    }
)


def check(resources: Sequence[Resource], config: Mapping[str, Any]) -> list[Finding]:
    """Findings for SageMaker targets whose only tracked metrics are utilisation."""
    findings = []
    for target in sagemaker.sagemaker_targets(resources):
        tracked = [
            metric
            for policy in sagemaker.policies_of(target, resources)
            if (metric := sagemaker.tracked_metric(policy)) is not None
        ]
        utilisation = [m for m in tracked if m[1] in _NAMES.utilisation_metrics]
        if utilisation and not any(m in DEMAND_METRICS for m in tracked):
            shown = ", ".join(sorted({m[1] for m in utilisation}))
            findings.append(
                Finding(
                    f"{target.get('resourceId')} scales only on {shown}: a supply signal; add a "
                    "target-tracking policy on concurrent requests per copy (realtime) or the "
                    "backlog per instance (async)",
                    target.urn,
                )
            )
    return findings


RULE: Final = Rule(
    name="sagemaker-demand-scaling",
    description="SageMaker scaling must track a demand metric, not CPU/GPU utilisation only.",
    doc=__doc__,
    severity="medium",
    enforcement="mandatory",
    check_stack=check,
)
