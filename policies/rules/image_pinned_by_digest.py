"""image-pinned-by-digest: an inference workload names its image by digest, not by tag alone.

Why: a tag can be moved. Two replicas of one Deployment may then run different images (one
pulled before the move, one after), a rollback to the "same" tag may not be the same code, and
`IfNotPresent` keeps a stale copy on nodes that pulled earlier. A digest names one image forever,
so every replica, node and rollback runs exactly what was tested.

Fix: set the image as `repository:tag@sha256:<digest>` (the tag stays for readers; the digest is
what is pulled), e.g. from `crane digest` or the registry's push output. Advisory by default:
a team that re-tags deliberately can keep it so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from inferstack.contract.images import has_digest
from inferstack.policies import kube
from inferstack.policies.resources import Resource
from inferstack.policies.rule import TIER_CONFIG_SCHEMA, Rule, config_value


def check(resource: Resource, config: Mapping[str, Any]) -> list[str]:
    """A message per container of an inference workload whose image has no digest."""
    tier_key = str(config_value(config, RULE, "tierLabel"))
    if not kube.is_inference_workload(resource, tier_key):
        return []
    messages = []
    for container in kube.containers(kube.pod_spec(resource)):
        image = container.get("image")
        if isinstance(image, str) and not has_digest(image):
            messages.append(
                f"container {container.get('name', '?')} runs image {image!r} by tag only; pin it "
                "as repository:tag@sha256:<digest> so every replica and rollback runs that image"
            )
    return messages


RULE: Final = Rule(
    name="image-pinned-by-digest",
    description="Inference workloads should pin their image by digest.",
    doc=__doc__,
    severity="medium",
    enforcement="advisory",
    check_resource=check,
    config_schema={"tierLabel": TIER_CONFIG_SCHEMA["tierLabel"]},
)
