"""Planning: the spec, sizing from a measured profile, cost and prices, schedules, GPU tables.

Pure Python, no Pulumi and no I/O beyond reading the shipped tables: everything a target needs to
know about a service is decided here, once, and carried by the plan (its pools included).
"""

from __future__ import annotations

from inferstack.components.planning.plan import ServicePlan, plan_service
from inferstack.components.planning.pools import BatchPool, Placement, Pool, RealtimePool, Tier
from inferstack.components.planning.sizing import Derived, Sizing, size_service
from inferstack.components.planning.spec import InferenceServiceSpec, parse_spec

__all__ = [
    "BatchPool",
    "Derived",
    "InferenceServiceSpec",
    "Placement",
    "Pool",
    "RealtimePool",
    "ServicePlan",
    "Sizing",
    "Tier",
    "parse_spec",
    "plan_service",
    "size_service",
]
