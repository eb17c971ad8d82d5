"""`inferstack tune`: a stack's cheapest configuration that meets its SLO; each nine's price.

Reads the stack and the traffic as `inferstack simulate` does (the same flags), searches the
knobs (`knobs`) with the optimiser (`search`), and prints the winner as a diff against the stack
file with a reason per change, the simulate table of the stack as it is, tuned, naive and the
competent default, and the frontier. `--write` applies the diff to the stack file (`write`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from inferstack.offline.discovery import CaptureError, add_program_arguments, locate_program
from inferstack.offline.simulate import SimulateError
from inferstack.offline.simulate.cli import (
    add_traffic_arguments,
    check_traffic,
    parse_start,
    traffic_rates,
)
from inferstack.offline.simulate.inputs import (
    StackInputs,
    declared_in_config,
    load_location,
    program_values,
)
from inferstack.offline.simulate.report import table
from inferstack.offline.simulate.scenarios import competent_default, naive
from inferstack.offline.stack_config import TARGET_KEY
from inferstack.offline.tune.knobs import (
    KNOB_NAMES,
    MAX_REPLICAS_PATH,
    OPTIONAL_KNOBS,
    service_values,
)
from inferstack.offline.tune.search import Outcome
from inferstack.offline.tune.tuner import Problem, Result, ablation, problem, tune
from inferstack.offline.tune.write import write_changes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stack and traffic flags of `simulate`, then the search's own."""
    add_program_arguments(parser)
    add_traffic_arguments(parser)
    parser.add_argument(
        "--seeds",
        type=int,
        default=4,
        help="seeds each answer is averaged over (bursts differ per seed; a trace is cut into "
        "one --days slice per seed) (default 4)",
    )
    parser.add_argument(
        "--knobs",
        default=None,
        help=f"comma-separated knobs to search (default: all the stack can set: "
        f"{', '.join((*KNOB_NAMES, *OPTIONAL_KNOBS))})",
    )
    parser.add_argument(
        "--mode",
        choices=["exact", "fast"],
        default="fast",
        help="the simulator's mode for every run (default fast: two time scales)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="write the price of each nine (cost against attainment) as a PNG",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="apply the winning diff to the stack file, keeping its comments and layout",
    )


def _seed_rates(args: argparse.Namespace, inputs: StackInputs) -> tuple[list[np.ndarray], str]:
    """Each seed's traffic: declared traffic with that seed's bursts, or that seed's trace slice."""
    if args.seeds < 1:
        raise SimulateError(
            "--seeds", f"{args.seeds} is not a positive number of seeds; use e.g. 4"
        )
    start = parse_start(args.start)
    if args.trace is None:
        rates, note = [], ""
        for seed in range(args.seeds):
            seed_rates, note, _ = traffic_rates(
                argparse.Namespace(**{**vars(args), "seed": seed}), inputs, start
            )
            rates.append(seed_rates)
        return rates, note
    whole, note, _ = traffic_rates(
        argparse.Namespace(**{**vars(args), "days": args.days * args.seeds, "seed": 0}),
        inputs,
        start,
    )
    seconds = max(60, round(args.days * 86400))
    if len(whole) < seconds * args.seeds:
        have = len(whole) / 86400
        raise SimulateError(
            "--trace",
            f"{args.trace} covers {have:.3g} day(s), but {args.seeds} seed(s) of --days "
            f"{args.days:g} need {args.days * args.seeds:g} (one slice per seed); pass --loop, "
            f"or fewer --seeds, or --days {math.floor(have / args.seeds * 1000) / 1000:g}",
        )
    return [whole[i * seconds : (i + 1) * seconds] for i in range(args.seeds)], note


def _load(args: argparse.Namespace) -> tuple[Problem, str, Path]:
    start = parse_start(args.start)
    location = locate_program(args)
    if args.write and not declared_in_config(location):
        raise SimulateError(
            "--write",
            f"stack {location.stack!r} builds its spec in its program, not in "
            f"{location.project.stack_file(location.stack).name}; drop --write and apply the "
            "printed changes to the program",
        )
    inputs = load_location(location, start)
    check_traffic(args, inputs)
    selected = [name.strip() for name in args.knobs.split(",")] if args.knobs else None
    rates, traffic = _seed_rates(args, inputs)
    values = program_values(location)
    if not declared_in_config(location) and values[TARGET_KEY] != "kubernetes":
        raise SimulateError(
            "--stack",
            f"stack {location.stack!r} declares its {values[TARGET_KEY]} service in its program: "
            "tune re-plans each candidate from the stack config, which holds no "
            f"inferstack:{values[TARGET_KEY]} options; put the spec and the options in the stack "
            "config to tune it (inferstack simulate runs it as it is)",
        )
    tuned = problem(
        location.stack,
        values,
        location.project_dir,
        start,
        inputs,
        rates,
        selected=selected,
        mode=args.mode,
    )
    return tuned, traffic, location.project.stack_file(location.stack)


def _progress(line: str) -> None:
    sys.stderr.write(line + "\n")


def _share(outcome: Outcome | None) -> str:
    return "-" if outcome is None else f"{outcome.attainment:.3%}"


def _implied(path: tuple[str, ...]) -> str:
    """Why a field no knob names changed with the winner: it follows one that did."""
    if path == MAX_REPLICAS_PATH:
        return "raised to the new min_replicas (the spec refuses a floor above the ceiling)"
    return "preferred sizes above the new max_batch_size"


def _changes(tuned: Problem, result: Result) -> list[dict[str, Any]]:
    """The winner's diff against the stack file, each change with its measured reason."""
    if result.winner is None:
        return []
    service = service_values(tuned.values)
    effects = ablation(tuned, result, result.winner)
    won = result.search.outcome(result.winner, result.search.seeds)
    by_path = {knob.path: knob for knob in tuned.knobs.values()}
    rows = []
    for path, value in tuned.fields(result.winner).items():
        knob = by_path.get(path)
        before: Any = service
        for key in path:
            before = before.get(key) if isinstance(before, dict) else None
        reason = knob.why if knob is not None else _implied(path)
        if before is None and knob is not None:
            # A knob the stack file leaves to sizing: say what sizing derived in its place.
            reason = (
                f"unset in the stack file (derived: {dict(tuned.initial)[knob.name]}); " + reason
            )
        effect = effects.get(knob.name) if knob is not None else None
        if effect is not None and won is not None:
            reason += (
                f"; undone alone: {_share(effect)} at ${effect.monthly_usd:,.0f}/month "
                f"(tuned: {_share(won)} at ${won.monthly_usd:,.0f})"
            )
        rows.append({"field": ".".join(path), "before": before, "after": value, "reason": reason})
    return rows


def _scenarios(
    tuned: Problem, result: Result, means: dict[str, Outcome | None]
) -> list[dict[str, Any]]:
    """simulate's summaries on seed 0: as it is, tuned, naive, competent default; with `means`
    (`_means`) over every seed."""
    inputs = tuned.inputs
    scenarios = [replace(inputs.configured, name="as is")]
    if result.winner is not None and tuned.changed(result.winner):
        winner = tuned.inputs_for(result.winner)
        assert winner is not None
        scenarios.append(replace(winner.configured, name="tuned"))
    scenarios.append(naive(inputs.configured, inputs.facts))
    scenarios.append(competent_default(inputs.configured, inputs.facts))
    documents = tuned.summaries(inputs, 0, scenarios)
    for document in documents:
        mean = means.get(document["scenario"])
        if mean is not None:
            document["mean_over_seeds"] = {
                "slo_attainment": round(mean.attainment, 6),
                "monthly_usd": round(mean.monthly_usd, 2),
            }
    return documents


def _means(tuned: Problem, result: Result) -> dict[str, Outcome | None]:
    """Mean attainment and cost over every seed of the stack as it is and the tuned one."""
    seeds = result.search.seeds
    means = {"as is": result.search.outcome(tuned.initial, seeds)}
    if result.winner is not None:
        means["tuned"] = result.search.outcome(result.winner, seeds)
    versus = result.versus
    means["competent default"] = versus.competent if versus is not None else tuned.competent()
    return means


def _versus_competent(tuned: Problem, result: Result) -> dict[str, Any] | None:
    """The cheapest configuration found whose mean attainment over every seed is at least the
    competent default's, against the competent default's cost (`tuner.versus_competent`: searched
    at that level unless a nine's answer already meets it for less, `covered_by`)."""
    versus = result.versus
    if versus is None:
        return None
    competent = versus.competent
    seeds = result.search.seeds
    found = versus.found
    outcome = None if found is None else result.search.outcome(found, seeds)
    row: dict[str, Any] = {
        "competent_default": {
            "slo_attainment": round(competent.attainment, 6),
            "monthly_usd": round(competent.monthly_usd, 2),
        },
        "searched": versus.searched,
        "covered_by": None if versus.covered_by is None else round(versus.covered_by * 100, 4),
        "candidates": len(result.search.evaluated(seeds)),
        "found": found is not None and outcome is not None,
    }
    if found is not None and outcome is not None:
        row.update(
            {
                "slo_attainment": round(outcome.attainment, 6),
                "monthly_usd": round(outcome.monthly_usd, 2),
                "saving_usd": round(competent.monthly_usd - outcome.monthly_usd, 2),
                "changes": {".".join(p): v for p, v in tuned.fields(found).items()},
            }
        )
    return row


def _frontier(tuned: Problem, result: Result) -> list[dict[str, Any]]:
    rows = []
    for level, candidate in result.frontier:
        outcome = (
            None if candidate is None else result.search.outcome(candidate, result.search.seeds)
        )
        rows.append(
            {
                "attainment_target": round(level * 100, 4),
                "found": candidate is not None,
                "slo_attainment": None if outcome is None else round(outcome.attainment, 6),
                "monthly_usd": None if outcome is None else round(outcome.monthly_usd, 2),
                "changes": {}
                if candidate is None
                else {".".join(p): v for p, v in tuned.fields(candidate).items()},
            }
        )
    return rows


def document(tuned: Problem, result: Result, traffic: str) -> dict[str, Any]:
    """The `--json` document."""
    means = _means(tuned, result)
    return {
        "stack": tuned.stack,
        "traffic": traffic,
        "days": len(tuned.rates[0]) / 86400,
        "seeds": len(tuned.rates),
        "mode": tuned.mode,
        "slo_attainment_target": tuned.inputs.spec.slo.attainment,
        "latency_budget_ms": tuned.inputs.spec.latency_budget_ms,
        "met": result.winner is not None,
        "simulations": result.search.runs,
        "changes": _changes(tuned, result),
        "scenarios": _scenarios(tuned, result, means),
        "frontier": _frontier(tuned, result),
        "versus_competent_default": _versus_competent(tuned, result),
        "closest": _closest(tuned, result),
        "needed": None if result.winner is not None else _needed(tuned),
    }


PEAK_WINDOW_S = 10
"""The window the traffic's peak rate is read over (a second is mostly Poisson noise)."""


def _needed(tuned: Problem) -> dict[str, Any] | None:
    """What the traffic asks of the pool when no configuration meets the SLO: its peak rate, the
    rise one cold start must absorb, and the warm floor that holds the peak at the sized rate
    per replica, beside the highest floor the search may try."""
    pool = tuned.inputs.configured.realtime
    if pool is None or pool.scaler is None:
        return None
    cold_start = tuned.inputs.configured.cold_start.new_node_s
    peak = rise = 0.0
    window = np.ones(PEAK_WINDOW_S) / PEAK_WINDOW_S
    reach = max(1, round(cold_start))
    for rates in tuned.rates:
        smooth = np.convolve(rates, window, mode="valid")
        if not len(smooth):
            continue
        peak = max(peak, float(smooth.max()))
        ahead = smooth[reach:] - smooth[:-reach] if len(smooth) > reach else smooth[:0]
        if len(ahead):
            rise = max(rise, float(ahead.max()))
    per_replica = tuned.auto_targets.get("rps") or (
        pool.scaler.demand_threshold if pool.metric == "rps" else 0.0
    )
    floors = tuned.knobs.get("min_replicas")
    ceiling = max((int(v) for v in floors.values), default=0) if floors else 0
    return {
        "peak_rps": round(peak, 1),
        "rise_within_cold_start_rps": round(rise, 1),
        "cold_start_s": round(cold_start, 1),
        "replica_rps": round(per_replica, 1),
        "floor_for_peak": math.ceil(peak / per_replica) if per_replica > 0 else None,
        "highest_floor_searched": ceiling,
    }


def _closest(tuned: Problem, result: Result) -> dict[str, Any] | None:
    """The highest attainment found on seed 0, for the report when nothing meets the SLO."""
    candidate = result.search.closest()
    outcome = result.search.outcome(candidate, result.search.seeds[:1]) if candidate else None
    if candidate is None or outcome is None:
        return None
    return {
        "slo_attainment": round(outcome.attainment, 6),
        "monthly_usd": round(outcome.monthly_usd, 2),
        "changes": {".".join(p): v for p, v in tuned.fields(candidate).items()},
    }


def _unmet(closest: dict[str, Any] | None, needed: dict[str, Any] | None) -> str:
    if closest is None:
        return "No configuration found meets the SLO (the spec refused every one tried)."
    changes = ", ".join(f"{k}={v}" for k, v in closest["changes"].items()) or "as is"
    text = (
        "No configuration found meets the SLO. The closest: "
        f"{closest['slo_attainment']:.3%} on seed 0 at ${closest['monthly_usd']:,.0f}/month "
        f"({changes})."
    )
    if needed is None:
        return text + " The misses that remain need more than these knobs."
    rise = needed["rise_within_cold_start_rps"]
    text += (
        f"\nWhat the traffic asks: it peaks at {needed['peak_rps']:,.0f} rps "
        f"({PEAK_WINDOW_S}-s windows) and rises by up to {rise:,.0f} rps within one cold start "
        f"({needed['cold_start_s']:g} s), faster than a reactive pool can add replicas."
    )
    floor = needed["floor_for_peak"]
    if floor is not None:
        text += (
            f" Holding the peak warm takes about {floor} replicas at the sized "
            f"{needed['replica_rps']:,.0f} rps each; the search tried floors up to "
            f"{needed['highest_floor_searched']} (twice the stack's max_replicas, within "
            "guardrails.max_gpu_replicas)."
        )
    return text + (
        " To meet it: raise max_replicas (and guardrails.max_gpu_replicas) so tune can try a "
        "higher floor, shorten the cold start (inferstack profile on the target GPU, a smaller "
        "image, a node kept warm), or choose the slo.attainment the price of each nine shows "
        "you can afford."
    )


def _text(doc: dict[str, Any]) -> str:
    lines = [
        f"Stack {doc['stack']}: {doc['days']:g} simulated day(s) x {doc['seeds']} seed(s), "
        f"{doc['traffic']}, {doc['mode']} mode, SLO {doc['slo_attainment_target']:g}% within "
        f"{doc['latency_budget_ms']:g} ms ({doc['simulations']} simulations)",
        "",
    ]
    if not doc["met"]:
        lines.append(_unmet(doc["closest"], doc["needed"]))
    elif not doc["changes"]:
        lines.append("The stack as it is is the cheapest configuration found that meets the SLO.")
    else:
        lines.append("Changes to the stack file (inferstack:service):")
        for change in doc["changes"]:
            before = "unset" if change["before"] is None else change["before"]
            lines.append(f"  {change['field']}: {before} -> {change['after']}")
            lines.append(f"      {change['reason']}")
    lines += ["", table(doc["scenarios"], doc["latency_budget_ms"])]
    lines.append(f"mean over {doc['seeds']} seed(s):")
    for scenario in doc["scenarios"]:
        mean = scenario.get("mean_over_seeds")
        if mean:
            lines.append(
                f"  {scenario['scenario']:<18} {mean['slo_attainment']:.4%}  "
                f"${mean['monthly_usd']:,.0f}/month"
            )
    lines += ["", "The price of each nine (cheapest configuration found, mean over seeds):"]
    for row in doc["frontier"]:
        if not row["found"]:
            lines.append(f"  {row['attainment_target']:g}%: none found")
            continue
        changes = ", ".join(f"{k}={v}" for k, v in row["changes"].items()) or "as is"
        lines.append(
            f"  {row['attainment_target']:g}%: ${row['monthly_usd']:,.0f}/month "
            f"({row['slo_attainment']:.4%}; {changes})"
        )
    versus = _versus_line(doc["versus_competent_default"])
    if versus:
        lines += ["", versus]
    return "\n".join(lines)


def _versus_line(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    competent = row["competent_default"]
    head = (
        f"Against the competent default ({competent['slo_attainment']:.4%} at "
        f"${competent['monthly_usd']:,.0f}/month), at equal or better attainment: "
    )
    how = (
        "searched at that level"
        if row["searched"]
        else f"not searched at that level: the {row['covered_by']:g}% answer already meets it "
        "for less"
    )
    if not row["found"]:
        return head + f"none of the {row['candidates']} configurations run on every seed ({how})."
    changes = ", ".join(f"{k}={v}" for k, v in row["changes"].items()) or "as is"
    saving = row["saving_usd"]
    verdict = (
        f"${saving:,.0f}/month less"
        if saving > 0
        else "the same cost"
        if saving == 0
        else f"${-saving:,.0f}/month more"
    )
    return head + (
        f"${row['monthly_usd']:,.0f}/month ({row['slo_attainment']:.4%}; {changes}), "
        f"{verdict} (cheapest of the {row['candidates']} configurations run on every seed; "
        f"{how})."
    )


def run(args: argparse.Namespace) -> int:
    """Tune and print; exit 2 on bad input, 1 when nothing meets the SLO."""
    try:
        tuned, traffic, stack_file = _load(args)
    except (SimulateError, CaptureError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    result = tune(tuned, log=_progress)
    doc = document(tuned, result, traffic)
    if args.write and result.winner is not None and doc["changes"]:
        write_changes(stack_file, tuned.fields(result.winner), tuned.project_dir, tuned.start)
        doc["written"] = str(stack_file)
    if args.plot is not None:
        from inferstack.offline.tune.plot import write_plot

        write_plot(doc, args.plot)
        doc["plot"] = str(args.plot)
    if args.json:
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text(doc) + "\n")
        for key in ("written", "plot"):
            if key in doc:
                sys.stdout.write(f"{key}: {doc[key]}\n")
    return 0 if result.winner is not None else 1
