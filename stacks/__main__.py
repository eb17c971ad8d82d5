"""The inferstack Pulumi program: one service from the stack config, on the stack's target.

Config keys: `inferstack:service` (the spec, see README), `inferstack:target` (`kubernetes`, the
default; `aws` and `gcp` are planned) and `inferstack:kubernetes` (cluster-side options: namespace,
Prometheus URL, batch queue binding; see `KubernetesOptions`). The program reads config once, into
the spec and options, and hands typed values to the components; components never read config.
"""

from pathlib import Path

import pulumi

from inferstack.components.kubernetes.component import KubernetesInferenceService
from inferstack.components.kubernetes.options import parse_options
from inferstack.components.planning.cost import estimate_cost
from inferstack.components.planning.spec import load_spec_from_config
from inferstack.errors import Problem, SpecError
from inferstack.profile import resolve_profile

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
options = parse_options(config.get_object("kubernetes"), source="inferstack:kubernetes")
service = KubernetesInferenceService(spec.name, spec, options, profile=profile)
cost = estimate_cost(spec, profile, service.sizing)

pulumi.export("sizing", service.sizing_output)
pulumi.export("cost", cost.to_dict())
pulumi.export("service_url", service.service_url)
pulumi.export("realtime_workload", service.realtime_workload)
pulumi.export("batch_workload", service.batch_workload)
pulumi.export("realtime_scaled_object", service.realtime_scaled_object)
pulumi.export("batch_scaled_object", service.batch_scaled_object)
