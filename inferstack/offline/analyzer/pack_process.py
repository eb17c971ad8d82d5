"""Start a policy pack the way the Pulumi engine starts it; no gRPC here.

Kept apart from the RPC driver (`inferstack.offline.analyzer.session`) so that `inferstack check`
can start the pack, and the program under mocks, before it pays for importing gRPC and the Pulumi
SDK.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import yaml

ORGANIZATION: Final = "organization"
"""What the engine passes for DIY backends, where there is no organization."""
BOOT_TIMEOUT_S: Final = 60.0


class PolicyRunError(RuntimeError):
    """The pack could not start, or failed while running a policy (not a violation)."""


@dataclass(frozen=True)
class StackContext:
    """The stack being analysed, as `ConfigureStack` and the pack's environment describe it."""

    project: str
    stack: str
    config: Mapping[str, str] = field(default_factory=dict)
    """Engine form: `{"namespace:key": "string"}`."""
    tags: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = True


@dataclass(frozen=True)
class PackInfo:
    """What `PulumiPolicy.yaml` says about a pack directory."""

    directory: Path
    version: str
    python: Path


def read_pack(pack_dir: Path, python: Path | None = None) -> PackInfo:
    """Read `PulumiPolicy.yaml` and resolve the interpreter the pack runs on.

    Like the language host: the `virtualenv` runtime option (relative to the pack) when it
    exists, else the interpreter running this process (the project's environment).
    """
    path = pack_dir / "PulumiPolicy.yaml"
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise PolicyRunError(
            f"{pack_dir} is not a policy pack: cannot read {path.name} ({error.strerror})"
        ) from None
    runtime = document.get("runtime")
    name = runtime.get("name") if isinstance(runtime, Mapping) else runtime
    if name != "python":
        raise PolicyRunError(f"{path}: runtime is {name!r}; only python packs can run offline")
    options = runtime.get("options", {}) if isinstance(runtime, Mapping) else {}
    if python is None:
        python = Path(sys.executable)
        venv = (options or {}).get("virtualenv")
        if venv:
            candidate = (pack_dir / str(venv) / "bin" / "python").absolute()
            if candidate.exists():
                python = candidate
    return PackInfo(pack_dir.resolve(), str(document.get("version", "0.0.1")), python)


class PackProcess:
    """A running policy pack: started like the engine starts it, stopped like the engine does."""

    def __init__(self, pack: PackInfo, context: StackContext) -> None:
        self.pack = pack
        # A file, not a pipe: nobody drains stderr while the pack runs. Closed by `close`.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        env = {
            **os.environ,
            "PULUMI_CONFIG": json.dumps(dict(context.config)),
            "PULUMI_PROJECT": context.project,
            "PULUMI_STACK": context.stack,
            "PULUMI_ORGANIZATION": ORGANIZATION,
            "PULUMI_DRY_RUN": "true" if context.dry_run else "false",
        }
        self._process = subprocess.Popen(
            [str(pack.python), "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(pack.directory)],
            cwd=pack.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._port: int | None = None

    def stderr_text(self) -> str:
        """What the pack wrote to stderr so far (its logs and tracebacks)."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def port(self) -> int:
        """Wait for the pack to print its port (the first stdout line) and return it."""
        if self._port is not None:
            return self._port
        assert self._process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=BOOT_TIMEOUT_S):
                stderr = self.stderr_text()
                self.close()
                raise PolicyRunError(
                    f"policy pack {self.pack.directory} printed no port within "
                    f"{BOOT_TIMEOUT_S:g} s\n{stderr}"
                )
        line = self._process.stdout.readline().decode(errors="replace").strip()
        if not line.isdigit():
            if not line:  # it exited: let it finish writing its traceback
                self._process.wait(timeout=BOOT_TIMEOUT_S)
            stderr = self.stderr_text().strip()
            self.close()
            raise PolicyRunError(
                f"policy pack {self.pack.directory} failed to start (first stdout line "
                f"{line!r}, expected its port)\n{stderr}"
            )
        self._port = int(line)
        return self._port

    def __enter__(self) -> PackProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the pack, as the engine does when the run ends. Safe to call twice."""
        if self._stderr.closed:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()
