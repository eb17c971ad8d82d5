"""`inferstack simulate`: KEDA, the HPA, cold starts and spot on moving traffic, per request.

Modules, one per part: `arrivals` (traffic), `replica` (the batcher kernel), `autoscaler` (KEDA
and the HPA), `capacity` (nodes, cold starts, spot), `cost`, `engine` (the exact mode),
`fast` (the two-scale mode), `scenarios` (naive, competent default, levers), `report`, `plot`,
`cli`; `inputs` is the only module that reads the rest of inferstack (the plan, the rendered
ScaledObjects).
"""

from __future__ import annotations

from inferstack.offline.simulate.autoscaler import (
    DEFAULT_BEHAVIOR,
    Behavior,
    CronTrigger,
    HorizontalPodAutoscaler,
    KedaScaler,
    ScaledObjectParams,
    ScalingPolicy,
    ScalingRules,
    external_average_value_replicas,
)
from inferstack.offline.simulate.config import Scenario
from inferstack.offline.simulate.engine import run_exact
from inferstack.offline.simulate.errors import SimulateError
from inferstack.offline.simulate.fast import run_fast
from inferstack.offline.simulate.loop import RunResult

__all__ = [
    "DEFAULT_BEHAVIOR",
    "Behavior",
    "CronTrigger",
    "HorizontalPodAutoscaler",
    "KedaScaler",
    "RunResult",
    "ScaledObjectParams",
    "ScalingPolicy",
    "ScalingRules",
    "Scenario",
    "SimulateError",
    "external_average_value_replicas",
    "run_exact",
    "run_fast",
]
