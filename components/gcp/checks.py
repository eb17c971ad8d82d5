"""What the GCP target cannot build, said before any resource exists (no Pulumi here).

The stack program calls `problems` with everything else it validates, so a user sees every
problem of the spec, the options and the target at once; the component calls it again, because
a component must not trust its caller.
"""

from __future__ import annotations

from inferstack.components.gcp.node_pools import name_problems
from inferstack.components.gcp.options import GcpOptions
from inferstack.components.planning.spec import InferenceServiceSpec
from inferstack.errors import Problem


def spec_problems(spec: InferenceServiceSpec) -> list[Problem]:
    """What in the spec the GCP target refuses (GPUs GCE lacks are the plan's to refuse)."""
    problems = name_problems(spec.name)
    if spec.batch is not None and spec.batch.queue.kind != "pubsub":
        problems.append(
            Problem(
                "batch.queue.kind",
                f"{spec.batch.queue.kind} is not a GCP queue; use pubsub on the gcp target",
            )
        )
    return problems


def problems(spec: InferenceServiceSpec, options: GcpOptions) -> list[Problem]:
    """Every problem of `options` and of `spec` for the GCP target."""
    return options.problems() + spec_problems(spec)


__all__ = ["problems", "spec_problems"]
