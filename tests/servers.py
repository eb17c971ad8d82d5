"""The server programs the integration tests start: where each comes from, what skips without it.

One table, three readers, so that they cannot drift:
- `make test` and `.ci/run` run this file before pytest (`python3 tests/servers.py --install`):
  it installs the missing Debian packages when it can (root, or sudo without a password) and
  otherwise prints which servers are missing and the one command that installs them;
- the fixtures in tests/integration/conftest.py skip (or, under CI=true, fail) with `reason()`;
- tests/conftest.py lists, after collection and before the run, every test that will skip.

Standard library only: it runs with the system Python, before pytest and the virtualenv matter.
The Python servers (moto, gcp-storage-emulator) come with the `dev` extra and are not listed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PUBSUB_EMULATOR_BIN = Path(
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
)
APT_LOCK_TIMEOUT_S = 300
"""Several checkouts may install at once on one machine: wait for apt's lock, do not fail."""


@dataclass(frozen=True)
class Server:
    """A program some tests start, the fixtures that start it and the packages that bring it."""

    name: str
    fixtures: tuple[str, ...]
    packages: tuple[str, ...]
    programs: tuple[str, ...] = ()
    files: tuple[Path, ...] = ()
    source: str = "Debian"
    environment: str = ""
    """The variable that names an already running server instead (then nothing is started)."""

    def present(self) -> bool:
        if self.environment and os.environ.get(self.environment):
            return True
        return all(shutil.which(program) for program in self.programs) and all(
            path.exists() for path in self.files
        )

    def reason(self) -> str:
        """The skip message: what is missing and the command that installs it."""
        return f"{self.name} is not installed ({install_command(self.packages)})"


SERVERS: tuple[Server, ...] = (
    Server(
        "redis-server",
        fixtures=("redis_server",),
        packages=("redis-server",),
        programs=("redis-server",),
        environment="INFERSTACK_TEST_REDIS_URL",
    ),
    Server(
        "prometheus",
        fixtures=("prometheus",),
        packages=("prometheus",),
        programs=("prometheus",),
        environment="INFERSTACK_TEST_PROMETHEUS",
    ),
    # Not in Debian: the emulator package comes from Google Cloud's own apt repository (the
    # gcloud CLI install guide adds it); this project's machines carry it preinstalled. Java is
    # Debian's.
    Server(
        "the Pub/Sub emulator",
        fixtures=("pubsub_emulator",),
        packages=("google-cloud-cli-pubsub-emulator", "openjdk-17-jre-headless"),
        programs=("java",),
        files=(PUBSUB_EMULATOR_BIN,),
        source="Google Cloud's apt repository (the emulator) and Debian (Java)",
        environment="INFERSTACK_TEST_PUBSUB_EMULATOR",
    ),
    # Not a server: the fidelity benchmark builds its open-loop client (benchmarks/openloop.c)
    # with the machine's C compiler, and its tests build it too.
    Server(
        "a C compiler",
        fixtures=("c_client",),
        packages=("gcc", "libc6-dev"),
        programs=("gcc",),
    ),
)
BY_FIXTURE = {fixture: server for server in SERVERS for fixture in server.fixtures}


def install_command(packages: Sequence[str]) -> str:
    sudo = "" if os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y --no-install-recommends {' '.join(packages)}"


def missing() -> list[Server]:
    return [server for server in SERVERS if not server.present()]


def can_install() -> list[str] | None:
    """The command prefix that runs apt-get as root here, or None when there is none."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if (
        shutil.which("sudo")
        and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0
    ):
        return ["sudo", "-n"]
    return None


def apt(prefix: list[str], *arguments: str) -> bool:
    command = [
        *prefix,
        "apt-get",
        "-qq",
        "-o",
        f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}",
        *arguments,
    ]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(command, env=environment, stdout=subprocess.DEVNULL)
    return result.returncode == 0


def available(packages: Sequence[str]) -> list[str]:
    """The packages apt has a candidate for (the Pub/Sub emulator has none without its repo)."""
    found = []
    for package in packages:
        result = subprocess.run(
            ["apt-cache", "policy", package], capture_output=True, text=True, check=False
        )
        candidate = next(
            (line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
             if line.strip().startswith("Candidate:")),
            "(none)",
        )  # fmt: skip
        if candidate != "(none)":
            found.append(package)
    return found


def install(servers: Sequence[Server]) -> None:
    prefix = can_install()
    if prefix is None or not servers:
        return
    wanted = sorted({package for server in servers for package in server.packages})
    print(f"test servers: installing {', '.join(wanted)} with apt-get", flush=True)
    if not apt(prefix, "update"):
        print("test servers: apt-get update failed; installing from the lists apt has")
    installable = available(wanted)
    if installable and not apt(prefix, "install", "-y", "--no-install-recommends", *installable):
        print(f"test servers: apt-get install {' '.join(installable)} failed")


def report(servers: Sequence[Server]) -> str:
    lines = [
        f"test servers missing: {', '.join(server.name for server in servers)}. The tests that "
        "start them skip (under CI=true they fail); pytest lists them before the run.",
    ]
    for server in servers:
        lines.append(
            f"  {server.name}: from {server.source}; fixtures {', '.join(server.fixtures)}"
        )
    packages = sorted({package for server in servers for package in server.packages})
    lines.append(f"Fix: {install_command(packages)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--install", action="store_true", help="install what is missing when root or sudo allows"
    )
    arguments = parser.parse_args(argv)
    if arguments.install:
        install(missing())
    still = missing()
    if not still:
        print("test servers: all present (" + ", ".join(s.name for s in SERVERS) + ")")
        return 0
    print(report(still), file=sys.stderr)
    # CI must run every test: stop before a run that would fail on each of them anyway.
    return 1 if os.environ.get("CI") == "true" else 0


if __name__ == "__main__":
    sys.exit(main())
