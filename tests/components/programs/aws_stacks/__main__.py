"""Test fixture: one `AwsInferenceStack` per scenario in `aws-stacks:scenarios`.

Each scenario is `{"spec": ..., "aws": ..., "kubernetes": ..., "profile": ...}`; with
`"shared_karpenter": true` the service gets its cluster's one `KarpenterController`. A scenario the
component refuses exports the refusal as `error-<name>` instead of failing the program, so one
capture shows both what was built and what was refused.
"""

from datetime import UTC, datetime

import pulumi
import pulumi_aws as aws

from inferstack.components.aws.component import AwsInferenceStack
from inferstack.components.aws.controller import KarpenterController
from inferstack.components.aws.options import parse_aws_options
from inferstack.components.kubernetes.options import parse_options
from inferstack.components.planning.plan import plan_service
from inferstack.components.planning.spec import parse_spec
from inferstack.errors import SpecError
from inferstack.profile import parse_profile

config = pulumi.Config("aws-stacks")
now = datetime.fromisoformat(config.require("now")).astimezone(UTC)
controllers: dict[str, KarpenterController] = {}
for scenario in config.require_object("scenarios"):
    spec = parse_spec(scenario["spec"])
    try:
        options = parse_aws_options(scenario.get("aws"), source="inferstack:aws", spec=spec)
        kubernetes = parse_options(
            scenario.get("kubernetes"), source="inferstack:kubernetes", spec=spec
        )
        plan = plan_service(spec, parse_profile(scenario["profile"]), target="aws", now=now)
        provider = aws.Provider(f"aws-{spec.name}", region=options.region or "us-east-1")
        on_aws = pulumi.ResourceOptions(providers={"aws": provider})
        karpenter = None
        if scenario.get("shared_karpenter"):
            # One controller per cluster, handed to every service of that cluster.
            cluster = options.cluster_name
            if cluster not in controllers:
                controllers[cluster] = KarpenterController(cluster, options, opts=on_aws)
            karpenter = controllers[cluster]
        stack = AwsInferenceStack(
            spec.name, plan, options, kubernetes, karpenter=karpenter, opts=on_aws
        )
    except SpecError as error:
        pulumi.export(f"error-{spec.name}", str(error))
        continue
    pulumi.export(f"queue_url-{spec.name}", stack.queue_url)
    pulumi.export(f"interruption_queue-{spec.name}", stack.interruption_queue)
    pulumi.export(f"results_uri-{spec.name}", stack.results_uri)
