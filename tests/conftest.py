"""Before the run: every test that will skip because a server program is missing, and the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.servers import SERVERS, install_command

# Servers the tests start open gRPC only where a test names a port (`--grpc-port`): on its
# default port, 8001, servers of tests running side by side would fight over one port.
os.environ.setdefault("INFERSTACK_GRPC_PORT", "0")


def pytest_report_collectionfinish(
    config: pytest.Config, start_path: Path, items: list[pytest.Item]
) -> list[str]:
    lines: list[str] = []
    packages: set[str] = set()
    for server in SERVERS:
        if server.present():
            continue
        skipping = [
            item.nodeid
            for item in items
            if set(getattr(item, "fixturenames", ())) & set(server.fixtures)
        ]
        if skipping:
            packages.update(server.packages)
            lines.append(f"{server.name} is missing: {len(skipping)} tests will skip")
            lines.extend(f"  {nodeid}" for nodeid in skipping)
    if lines:
        lines.append(f"Fix: {install_command(sorted(packages))}")
    return lines
