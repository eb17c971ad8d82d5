"""The inferstack Pulumi program: one service from the stack config, on the stack's target.

Config keys: `inferstack:service` (the spec, see README) and `inferstack:target`
(`kubernetes`, the default; `aws` and `gcp` are planned). The program reads config once, into the
spec, and hands typed values to the components; components never read config themselves.
"""

from pathlib import Path

import pulumi

from inferstack.components.cost import estimate_cost
from inferstack.components.errors import Problem, SpecError
from inferstack.components.profile import resolve_profile
from inferstack.components.sizing import size_service
from inferstack.components.spec import load_spec_from_config

SUPPORTED_TARGETS = ("kubernetes",)
PROJECT_DIR = Path(__file__).resolve().parent.parent  # relative profile paths start here

config = pulumi.Config("inferstack")
target = config.get("target") or "kubernetes"
if target not in SUPPORTED_TARGETS:
    raise SpecError(
        [
            Problem(
                "inferstack:target", f"{target!r} is not available; use one of {SUPPORTED_TARGETS}"
            )
        ],
        source="stack config",
    )

spec = load_spec_from_config()
profile = resolve_profile(spec.model.uri, spec.model.profile, base_dir=PROJECT_DIR)
sizing = size_service(spec, profile, target="kubernetes")
cost = estimate_cost(spec, profile, sizing)

pulumi.export("sizing", sizing.to_dict())
pulumi.export("cost", cost.to_dict())
