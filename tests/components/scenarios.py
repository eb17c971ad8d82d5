"""Run one of the fixture programs in tests/components/programs over a list of scenarios.

Each program builds one component per scenario from `<project>:scenarios` (spec, options,
profile) at the clock `<project>:now`, and exports a refusal as `error-<name>` instead of
failing, so one capture shows both what was built and what was refused.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from inferstack.offline.capture import Capture, capture_program

PROGRAMS = Path(__file__).resolve().parent / "programs"


def capture_scenarios(program: str, scenarios: list[dict[str, Any]], now: datetime) -> Capture:
    """The capture of `programs/<program>` over `scenarios`, planned at `now`."""
    folder = PROGRAMS / program
    project = yaml.safe_load((folder / "Pulumi.yaml").read_text())["name"]
    config = {f"{project}:scenarios": json.dumps(scenarios), f"{project}:now": now.isoformat()}
    return capture_program(folder, stack="test", config=config)
