"""The cold start the plan counts on each target, where it differs from a Kubernetes node's.

On Kubernetes (and EKS, GKE) a new replica may wait for a node to be provisioned, the image to
be pulled onto it, the model's download, its load and warm-up: the profile's parts
(`inferstack.profile.ColdStart`) with the download the plan adds
(`model_delivery.with_model_download`).

Cloud Run provisions no node. "Cloud Run instances with an attached L4 GPU with drivers
pre-installed start in approximately 5 seconds, at which point the processes running in your
container can start to use the GPU" (Cloud Run, "GPU support for services",
https://cloud.google.com/run/docs/configuring/services/gpu). So on the `cloudrun` target the
plan's cold start is that instance start, the image, the model's download, load and warm-up:
the instance start takes the place of the node's provisioning (the `node_provision` part holds
it there), and every consumer of the plan's cold start - the pre-warm lead, the scale-to-zero
checks, the hold timeout, the simulator (which starts an instance where it would launch a node)
- counts it without a node. The image term stays the profile's whole pull: Cloud Run streams
the image, so an instance starts sooner, but Google publishes no figure for it, and a cold
start counted too short starts pre-warm too late.
"""

from __future__ import annotations

from typing import Final

from inferstack.components.planning.clouds import Target
from inferstack.profile import ColdStart, ColdStartPart, Profile

CLOUD_RUN_INSTANCE_START_S: Final = 5.0
"""A Cloud Run GPU instance's start, drivers included (Google's figure, see the module)."""
CLOUD_RUN_INSTANCE_NOTE: Final = (
    "Cloud Run starts an instance, not a node: a GPU instance with its drivers preinstalled "
    "starts in about 5 s (Cloud Run, GPU support for services)"
)
CLOUD_RUN_IMAGE_NOTE: Final = (
    "the profile's whole pull; Cloud Run streams the image, so this is an upper bound"
)


def for_target(profile: Profile, target: Target) -> Profile:
    """`profile` with the cold start of `target`: on Cloud Run, an instance start in place of
    the node's provisioning; elsewhere unchanged."""
    if target != "cloudrun":
        return profile
    cold = profile.cold_start
    instance = ColdStartPart(
        seconds=CLOUD_RUN_INSTANCE_START_S, source="assumed", note=CLOUD_RUN_INSTANCE_NOTE
    )
    image = cold.image_pull.model_copy(update={"note": CLOUD_RUN_IMAGE_NOTE})
    updated = cold.model_copy(update={"node_provision": instance, "image_pull": image})
    return profile.model_copy(update={"cold_start": updated})


def _part(label: str, part: ColdStartPart, detail: str = "") -> str:
    return f"{label} {part.seconds:g} s ({part.source}{'; ' + detail if detail else ''})"


def cloud_run_reason(cold: ColdStart) -> str:
    """The reason line of a Cloud Run cold start: no node term, and why."""
    terms = [
        _part("instance start", cold.node_provision),
        _part("image", cold.image_pull, "streamed: an upper bound"),
    ]
    if cold.model_download is not None:
        terms.append(_part("download", cold.model_download, cold.model_download.note))
    terms += [_part("load", cold.model_load), _part("warm-up", cold.warmup)]
    return (
        "no node on Cloud Run (it starts an instance: about 5 s for a GPU instance with drivers "
        "preinstalled, Google's Cloud Run GPU page): " + " + ".join(terms)
    )


def start_label(cold: ColdStart) -> str:
    """What the first part of `cold` starts, for reason lines: "instance start" where
    `for_target` put Cloud Run's instance start, else "node"."""
    return "instance start" if cold.node_provision.note == CLOUD_RUN_INSTANCE_NOTE else "node"


def target_reason(cold: ColdStart, target: Target) -> str | None:
    """The cold start's reason line where the target's own differs from sizing's node line
    (Cloud Run's), else None."""
    return cloud_run_reason(cold) if target == "cloudrun" else None


__all__ = [
    "CLOUD_RUN_INSTANCE_START_S",
    "cloud_run_reason",
    "for_target",
    "start_label",
    "target_reason",
]
