"""The CrossGuard policy pack: the rule model, one module per rule, and the pack adapter.

Light on purpose: a rule test should not pay for `pulumi_policy` or gRPC; only the pack adapter
(`inferstack.policies.pack`) imports them. The offline replay of the engine that drives this pack
(`inferstack check`) lives in `inferstack.offline.analyzer`.
"""

from inferstack.policies.resources import UNKNOWN, Finding, Resource
from inferstack.policies.rule import Rule
from inferstack.policies.rules import ALL_RULES

__all__ = ["ALL_RULES", "UNKNOWN", "Finding", "Resource", "Rule"]
