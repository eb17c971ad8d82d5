"""The inferstack CrossGuard policy pack: `pulumi preview --policy-pack policies`.

Only the pack lives here; each rule is a module in `inferstack.policies.rules`. Nothing may print
to stdout at import time: the engine reads the pack's gRPC port from the first stdout line.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from inferstack.policies.pack import PACK_NAME, policies, readme

PolicyPack(
    name=PACK_NAME,
    policies=policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description="Blocks GPU inference configurations that burn money or break latency budgets.",
    display_name="inferstack",
    readme=readme(),
    tags=["gpu", "inference", "kubernetes", "aws", "gcp"],
)
