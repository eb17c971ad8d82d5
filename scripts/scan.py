"""Judge every stack's rendered Kubernetes objects with checkov, as a platform team's CI would.

For each stacks/Pulumi.<stack>.yaml: `inferstack preview --stack <stack> --json` (the offline
capture), its `kubernetes:*` resources written as manifests to build/manifests/<stack>.yaml, then
checkov on that file alone (a NetworkPolicy of one stack must not cover another's pods).

Fails on any failed check, and on any skip without a reason: a skip is a decision recorded on the
object itself (`checkov.io/skip<N>: CHECK_ID=reason`), so it travels with the manifest.

    python scripts/scan.py --checkov .venv-scan/bin/checkov [--stack dev ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inferstack.offline.capture import integral_floats_to_int

REPO = Path(__file__).resolve().parents[1]
STACKS = REPO / "stacks"
OUT = REPO / "build" / "manifests"
KUBERNETES_PREFIX = "kubernetes:"


def stacks() -> list[str]:
    return sorted(
        path.name[len("Pulumi.") : -len(".yaml")] for path in STACKS.glob("Pulumi.*.yaml")
    )


def render(stack: str, inferstack: str) -> list[dict[str, Any]]:
    """The Kubernetes objects `inferstack preview --stack STACK --json` captures."""
    result = subprocess.run(
        [inferstack, "preview", "--stack", stack, "--json", "--project-dir", str(REPO)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"scan: preview of stack {stack!r} failed:\n{result.stderr}")
    document = json.loads(result.stdout)
    return [
        integral_floats_to_int(resource["inputs"])
        for resource in document["resources"]
        if resource["type"].startswith(KUBERNETES_PREFIX)
    ]


@dataclass
class Verdict:
    """One stack's checkov results."""

    stack: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)


def judge(stack: str, report: Any) -> Verdict:
    """Counts and lines from checkov's JSON report (one framework: a dict; none matched: a list)."""
    verdict = Verdict(stack)
    reports = report if isinstance(report, list) else [report]
    for one in reports:
        if not isinstance(one, dict) or "results" not in one:
            continue
        results = one["results"]
        verdict.passed += len(results.get("passed_checks", []))
        for check in results.get("failed_checks", []):
            verdict.failed.append(f"{check['check_id']} {check['resource']}: {check['check_name']}")
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
            line = f"{check['check_id']} {check['resource']}: {reason or '(no reason)'}"
            verdict.skipped.append(line)
            if not reason:
                verdict.unexplained.append(line)
    return verdict


def scan(stack: str, objects: list[dict[str, Any]], checkov: str) -> Verdict:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = OUT / f"{stack}.yaml"
    manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    result = subprocess.run(
        [
            checkov, "--file", str(manifest), "--framework", "kubernetes", "--output", "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    # checkov exits 1 when a check failed: the JSON on stdout says which.
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise SystemExit(f"scan: checkov failed on {manifest}:\n{result.stderr}")
    return judge(stack, json.loads(result.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default="checkov", help="the checkov program")
    parser.add_argument("--inferstack", default=str(Path(sys.executable).parent / "inferstack"))
    parser.add_argument("--stack", action="append", help="only these stacks (default: all)")
    arguments = parser.parse_args(argv)
    verdicts = []
    for stack in arguments.stack or stacks():
        objects = render(stack, arguments.inferstack)
        if not objects:  # a SageMaker stack: managed endpoints, no Kubernetes objects to scan
            print(f"{stack}: no Kubernetes objects, nothing for checkov")
            continue
        verdict = scan(stack, objects, arguments.checkov)
        verdicts.append(verdict)
        print(
            f"{stack}: {len(objects)} objects, {verdict.passed} passed, "
            f"{len(verdict.failed)} failed, {len(verdict.skipped)} skipped with a reason"
            + (f", {len(verdict.unexplained)} skipped without one" if verdict.unexplained else "")
        )
        for line in verdict.failed:
            print(f"  FAILED  {line}")
        for line in verdict.skipped:
            print(f"  skipped {line}")
    bad = [v for v in verdicts if v.failed or v.unexplained]
    if bad:
        print(
            "scan: fix the objects, or record the decision on the object as "
            "`checkov.io/skip<N>: CHECK_ID=reason` (see README)",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
