"""queue-delay-within-budget: the batcher's max queue delay leaves room in the latency budget.

Why: a request may wait up to the max queue delay for a batch to fill before any compute starts.
If that wait takes more than a small share of the p99 budget, the budget is spent in the queue
under light traffic, when batches never fill and every request waits the full delay.

Fix: lower the max queue delay (`batching.max_queue_delay_ms`; a few milliseconds is typical)
or, if a larger budget is acceptable, declare it (`latency_budget_ms`); raise
`maxQueueDelayShare` in the policy config only if compute time is known to be small. Both values
come from the spec; our components write them as the annotations `inferstack.io/max-queue-delay-ms`
and `inferstack.io/latency-budget-ms`, and the runtime reads its delay from the
`INFERSTACK_MAX_QUEUE_DELAY_MS` container env var.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from inferstack.contract import resource_types
from inferstack.contract.env import ENV_MAX_QUEUE_DELAY_MS as MAX_QUEUE_DELAY_ENV
from inferstack.contract.labels import LATENCY_BUDGET_MS_ANNOTATION, MAX_QUEUE_DELAY_MS_ANNOTATION
from inferstack.contract.thresholds import MAX_QUEUE_DELAY_SHARE, queue_delay_excess
from inferstack.policies import kube
from inferstack.policies.resources import (
    Resource,
    as_number,
    format_number,
    get_path,
    list_of,
    mapping_of,
)
from inferstack.policies.rule import Rule, config_value

TYPES: Final = resource_types.WORKLOAD_TYPES | {
    resource_types.SCALED_OBJECT,
    resource_types.HTTP_SCALED_OBJECT,
}


def _declared(resource: Resource) -> dict[str, Any]:
    """Annotations of the object and, for workloads, of its pod template."""
    merged = dict(kube.object_annotations(resource))
    merged.update(mapping_of(get_path(kube.pod_template(resource), "metadata.annotations")))
    return merged


def _env_delays(resource: Resource) -> list[Any]:
    return [
        mapping_of(env).get("value")
        for container in kube.containers(kube.pod_spec(resource))
        for env in list_of(container.get("env"))
        if mapping_of(env).get("name") == MAX_QUEUE_DELAY_ENV
    ]


def check(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """Messages when a declared max queue delay exceeds the allowed share of the budget."""
    if resource.type not in TYPES:
        return []
    declared = _declared(resource)
    raw_budget = declared.get(LATENCY_BUDGET_MS_ANNOTATION)
    if raw_budget is None:
        return []
    budget = as_number(raw_budget)
    if budget is None or budget <= 0:
        if not isinstance(raw_budget, str):
            return []  # computed in preview: nothing to judge yet
        return [
            f"annotation {LATENCY_BUDGET_MS_ANNOTATION} is not a positive number of "
            "milliseconds; write the p99 budget as a decimal string, e.g. '150'"
        ]
    delays: list[tuple[str, Any]] = [
        (f"container env {MAX_QUEUE_DELAY_ENV}", value) for value in _env_delays(resource)
    ]
    if MAX_QUEUE_DELAY_MS_ANNOTATION in declared:
        delays.append(
            (f"annotation {MAX_QUEUE_DELAY_MS_ANNOTATION}", declared[MAX_QUEUE_DELAY_MS_ANNOTATION])
        )
    share = float(config_value(config, RULE, "maxQueueDelayShare"))
    messages = []
    for source, raw in delays:
        delay = as_number(raw)
        if delay is None:
            if isinstance(raw, str):
                messages.append(
                    f"{source} is not a number of milliseconds; write it as a decimal string"
                )
            continue
        excess = queue_delay_excess(delay, budget, share)
        if excess is not None:
            messages.append(
                f"{source} allows {excess}; lower the max queue delay to at most "
                f"{format_number(budget * share)} ms or raise the declared budget"
            )
    return messages


RULE: Final = Rule(
    name="queue-delay-within-budget",
    description="The batching max queue delay must stay within a share of the p99 latency budget.",
    doc=__doc__,
    severity="medium",
    enforcement="mandatory",
    check_resource=check,
    config_schema={
        "maxQueueDelayShare": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "default": MAX_QUEUE_DELAY_SHARE,
            "description": "largest share of the p99 budget the max queue delay may take",
        },
    },
)
