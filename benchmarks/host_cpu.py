"""Where a benchmark's CPU went: the host's busy cores and its own process trees, sampled.

The fidelity benchmark's two replicas, their model processes and the client share this
machine's cores with each other and with other tenants; the simulator gives each replica its
own. To judge whether that matters, this samples (Linux /proc, once per `interval`) the host's
busy time over all cores and per core (`/proc/stat`, everything but idle and iowait) and the CPU
time of
named process trees (`utime + stime` of a process and its live descendants), and reports the
cores each used between two moments.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

PROC: Final = Path("/proc")
TICKS_PER_S: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def host_ticks() -> dict[str, tuple[int, int]]:
    """(busy, total) clock ticks since boot of all cores (`host`) and of each (`cpu0`, ...):
    busy leaves out idle and iowait."""
    found = {}
    for line in (PROC / "stat").read_text().splitlines():
        if not line.startswith("cpu"):
            continue
        name, *values = line.split()
        fields = [int(v) for v in values]
        total = sum(fields[:8])  # user..steal; guest time is already inside user
        found["host" if name == "cpu" else name] = (total - fields[3] - fields[4], total)
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its live descendants; 0 for a gone process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        # The command name, in parentheses, may hold spaces: fields count from its end.
        fields = stat[stat.rindex(")") + 2 :].split()
        own = (int(fields[11]) + int(fields[12])) / TICKS_PER_S
        children = []
        for task in (PROC / str(pid) / "task").iterdir():
            children += (task / "children").read_text().split()
    except (OSError, ValueError):
        return 0.0
    return own + sum(tree_cpu_s(int(child)) for child in children)


class CpuSampler:
    """Samples the host and `groups` (name: root pids) every `interval` s in a thread."""

    def __init__(self, groups: Mapping[str, Sequence[int]], interval: float = 1.0) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.interval = interval
        self.samples: list[tuple[float, dict[str, tuple[int, int]], dict[str, float]]] = []
        self.began = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CpuSampler:
        self.began = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def cores(self, start_s: float, end_s: float) -> dict[str, float]:
        """Cores used between the samples nearest `start_s` and `end_s` (seconds since start):
        `host` (all cores, everyone), each core (`cpu0`, ...: its busy share) and each group."""
        first = min(self.samples, key=lambda sample: abs(sample[0] - start_s))
        last = min(self.samples, key=lambda sample: abs(sample[0] - end_s))
        wall = last[0] - first[0]
        if wall <= 0:
            return {}
        found = {}
        for name, (busy, total) in last[1].items():
            busy, total = busy - first[1][name][0], total - first[1][name][1]
            share = busy / total if total else 0.0
            found[name] = share * (os.cpu_count() or 1) if name == "host" else share
        for name in self.groups:
            found[name] = (last[2][name] - first[2][name]) / wall
        return found

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        ticks = host_ticks()
        used = {name: sum(tree_cpu_s(pid) for pid in pids) for name, pids in self.groups.items()}
        self.samples.append((time.monotonic() - self.began, ticks, used))
