"""The CrossGuard policy pack rules and the offline policy check.

Light on purpose: the Kubernetes components import `inferstack.contract.labels`, and neither
they nor a rule test should pay for `pulumi_policy` or gRPC. The pack adapter
(`inferstack.policies.pack`) and the engine emulator (`inferstack.policies.engine`) import those.
"""

from inferstack.policies.resources import UNKNOWN, Finding, Resource
from inferstack.policies.rule import Rule
from inferstack.policies.rules import ALL_RULES

__all__ = ["ALL_RULES", "UNKNOWN", "Finding", "Resource", "Rule"]
