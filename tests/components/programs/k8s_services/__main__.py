"""Test fixture: one `KubernetesInferenceService` per scenario in `k8s-services:scenarios`.

Each scenario is `{"spec": ..., "options": ..., "profile": ...}` (profile optional, a profile
document). A scenario whose component refuses its input exports the refusal as `error-<name>`
instead of failing the program, so one capture shows both what was built and what was refused.
"""

from datetime import UTC, datetime

import pulumi

from inferstack.components.kubernetes.component import KubernetesInferenceService
from inferstack.components.kubernetes.options import parse_options
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.errors import SpecError
from inferstack.profile import parse_profile, resolve_profile

config = pulumi.Config("k8s-services")
now = datetime.fromisoformat(config.require("now")).astimezone(UTC)
for scenario in config.require_object("scenarios"):
    spec = parse_spec(scenario["spec"])
    options = parse_options(scenario.get("options"), source="options")
    try:
        profile = (
            parse_profile(scenario["profile"])
            if "profile" in scenario
            else resolve_profile(spec.model.uri, spec.model.profile)
        )
        plan = plan_service(spec, profile, now=now)
        service = KubernetesInferenceService(spec.name, plan, options)
    except SpecError as error:
        pulumi.export(f"error-{spec.name}", str(error))
        continue
    pulumi.export(f"service_url-{spec.name}", service.service_url)
    pulumi.export(f"realtime_workload-{spec.name}", service.realtime_workload)
    pulumi.export(f"batch_workload-{spec.name}", service.batch_workload)
    pulumi.export(f"realtime_scaled_object-{spec.name}", service.realtime_scaled_object)
    pulumi.export(f"batch_scaled_object-{spec.name}", service.batch_scaled_object)
    pulumi.export(f"sizing-{spec.name}", service.sizing_output)
