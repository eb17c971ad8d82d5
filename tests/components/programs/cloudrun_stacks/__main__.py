"""Test fixture: one `CloudRunInferenceStack` per scenario in `cloudrun-stacks:scenarios`.

Each scenario is `{"spec": ..., "cloudrun": ..., "profile": ...}`. A scenario the component
refuses exports the refusal as `error-<name>` instead of failing the program.
"""

from datetime import UTC, datetime

import pulumi

from inferstack.components.cloudrun.component import CloudRunInferenceStack
from inferstack.components.cloudrun.options import parse_cloudrun_options
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.errors import SpecError
from inferstack.profile import parse_profile

config = pulumi.Config("cloudrun-stacks")
now = datetime.fromisoformat(config.require("now")).astimezone(UTC)
for scenario in config.require_object("scenarios"):
    spec = parse_spec(scenario["spec"])
    try:
        options = parse_cloudrun_options(
            scenario.get("cloudrun"), source="inferstack:cloudrun", spec=spec
        )
        plan = plan_service(spec, parse_profile(scenario["profile"]), target="cloudrun", now=now)
        stack = CloudRunInferenceStack(spec.name, plan, options)
    except SpecError as error:
        pulumi.export(f"error-{spec.name}", str(error))
        continue
    pulumi.export(f"service_uri-{spec.name}", stack.service_uri)
    pulumi.export(f"worker_pool-{spec.name}", stack.worker_pool)
    pulumi.export(f"results_uri-{spec.name}", stack.results_uri)
