"""Test fixture: one `GcpInferenceStack` per scenario in `gcp-stacks:scenarios`.

Each scenario is `{"spec": ..., "gcp": ..., "kubernetes": ..., "profile": ...}`. A scenario whose
plan or component refuses its input exports the refusal as `error-<name>` instead of failing the
program, so one capture shows both what was built and what was refused.
"""

from datetime import UTC, datetime

import pulumi

from inferstack.components.gcp.component import GcpInferenceStack
from inferstack.components.gcp.options import parse_gcp_options
from inferstack.components.kubernetes.options import parse_options
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.errors import SpecError
from inferstack.profile import parse_profile

config = pulumi.Config("gcp-stacks")
now = datetime.fromisoformat(config.require("now")).astimezone(UTC)
for scenario in config.require_object("scenarios"):
    spec = parse_spec(scenario["spec"])
    try:
        options = parse_gcp_options(scenario.get("gcp"), source="inferstack:gcp", spec=spec)
        kubernetes = parse_options(
            scenario.get("kubernetes"), source="inferstack:kubernetes", spec=spec
        )
        plan = plan_service(spec, parse_profile(scenario["profile"]), target="gcp", now=now)
        stack = GcpInferenceStack(spec.name, plan, options, kubernetes)
    except SpecError as error:
        pulumi.export(f"error-{spec.name}", str(error))
        continue
    pulumi.export(f"subscription-{spec.name}", stack.subscription)
    pulumi.export(f"results_uri-{spec.name}", stack.results_uri)
    pulumi.export(f"image-{spec.name}", stack.image)
    pulumi.export(f"node_pools-{spec.name}", stack.node_pools)
