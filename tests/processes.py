"""A server's or worker's model processes, and whether a process has exited, from /proc."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: state, parent pid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def model_processes(parent: int) -> list[int]:
    """Children of `parent` that run multiprocessing's spawn entry point (the model instances)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(entry.name))[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # Gone while we looked.
        if ppid == parent and any(b"spawn_main" in part for part in command):
            found.append(int(entry.name))
    return found


def is_gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        return stat_fields(pid)[0] == "Z"
    except OSError:
        return True
