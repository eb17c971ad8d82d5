"""Test fixture: one `SageMakerInferenceStack` per scenario in `sagemaker-stacks:scenarios`.

Each scenario is `{"spec": ..., "sagemaker": ..., "profile": ...}`. A scenario the component
refuses exports the refusal as `error-<name>` instead of failing the program.
"""

from datetime import UTC, datetime

import pulumi

from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.components.sagemaker.component import SageMakerInferenceStack
from inferstack.components.sagemaker.options import parse_sagemaker_options
from inferstack.errors import SpecError
from inferstack.profile import parse_profile

config = pulumi.Config("sagemaker-stacks")
now = datetime.fromisoformat(config.require("now")).astimezone(UTC)
for scenario in config.require_object("scenarios"):
    spec = parse_spec(scenario["spec"])
    try:
        options = parse_sagemaker_options(
            scenario.get("sagemaker"), source="inferstack:sagemaker", spec=spec
        )
        plan = plan_service(spec, parse_profile(scenario["profile"]), target="sagemaker", now=now)
        stack = SageMakerInferenceStack(spec.name, plan, options)
    except SpecError as error:
        pulumi.export(f"error-{spec.name}", str(error))
        continue
    pulumi.export(f"realtime_endpoint-{spec.name}", stack.realtime_endpoint)
    pulumi.export(f"async_endpoint-{spec.name}", stack.async_endpoint)
    pulumi.export(f"async_failure_uri-{spec.name}", stack.async_failure_uri)
