"""The stack config's reader lists the spec's problems and the options' in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from inferstack.errors import SpecError
from inferstack.offline.stack_config import from_values
from tests.components.factories import spec_data


def test_spec_and_options_problems_are_listed_together(tmp_path: Path) -> None:
    service = spec_data(latency_budget_ms=20, batching__max_queue_delay_ms=15, batching__typo=1)
    with pytest.raises(SpecError) as caught:
        from_values({"service": service, "kubernetes": {"bogus": 1}}, project_dir=tmp_path)
    assert [problem.path for problem in caught.value.problems] == [
        "inferstack:service.batching.typo",
        "inferstack:service.batching.max_queue_delay_ms",
        "inferstack:kubernetes.bogus",
    ]
