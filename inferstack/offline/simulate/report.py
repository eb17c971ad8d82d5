"""Numbers from runs: latency percentiles, SLO attainment, hours, cost, timeline; the table.

SLO attainment is the share of *all* requests that were answered within the latency budget:
rejected requests (a full queue, no endpoints) and timed-out ones (the batcher's request timeout,
the HTTP add-on's hold timeout) count as misses.

Once requests meet a full queue, the longest served latency is the queue's ceiling (a request
admitted last waits for `queue_limit` requests ahead of it), not a measured tail: the report
gives the share of requests that met a full queue beside it, and calls the maximum "max served".
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from inferstack.offline.simulate.cost import PoolCost, pool_cost
from inferstack.offline.simulate.loop import RunResult
from inferstack.offline.simulate.replica import (
    REFUSED,
    REJECTED,
    SERVED,
    TIMEOUTS,
    WITHIN_BUDGET,
    highest,
    percentile,
)


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)


def summarize(run: RunResult, *, timeline: bool = True) -> dict[str, Any]:
    """One run as a JSON-ready document."""
    scenario = run.scenario
    counters = run.recorder.counters
    fine = run.recorder.fine
    costs: list[PoolCost] = []
    if scenario.realtime is not None and run.realtime_usage is not None:
        costs.append(
            pool_cost("realtime", run.realtime_usage, scenario.realtime.prices, run.seconds)
        )
    if scenario.batch is not None and run.batch_usage is not None:
        costs.append(pool_cost("batch", run.batch_usage, scenario.batch.prices, run.seconds))
    arrivals = max(run.arrivals, 1)
    document: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "mode": run.mode,
        "simulated_seconds": run.seconds,
        "requests": run.arrivals,
        "served": int(counters[SERVED]),
        "rejected": int(counters[REJECTED] + counters[REFUSED]),
        "met_full_queue": int(counters[REJECTED]),
        "full_queue_share": round(float(counters[REJECTED]) / arrivals, 6)
        if run.arrivals
        else None,
        "timeouts": int(counters[TIMEOUTS]),
        "held_at_zero": run.held,
        "latency_ms": {
            "p50": _ms(percentile(fine, 0.50)),
            "p95": _ms(percentile(fine, 0.95)),
            "p99": _ms(percentile(fine, 0.99)),
            "max": _ms(highest(fine)),
        },
        "slo_attainment": round(float(counters[WITHIN_BUDGET]) / arrivals, 6)
        if run.arrivals
        else None,
        "pools": [asdict(cost) for cost in costs],
        "monthly_usd": round(sum(cost.monthly_usd for cost in costs), 2),
    }
    if run.batch is not None:
        stats = run.batch
        document["batch"] = {
            "items": stats.items,
            "processed": stats.processed,
            "max_backlog": stats.max_backlog,
            "mean_wait_s": round(stats.backlog_seconds / stats.processed, 3)
            if stats.processed
            else None,
            "pods_drained_on_notice": stats.drained_pods,
            "items_lost": round(stats.expired_items),
        }
    if timeline:
        document["timeline"] = _timeline(run)
    return document


def _timeline(run: RunResult) -> list[dict[str, Any]]:
    line = run.timeline
    rows = []
    for minute in range(len(line.rps)):
        row: dict[str, Any] = {
            "minute": minute,
            "rps": round(line.rps[minute], 2),
            "realtime_ready": line.realtime_ready[minute],
            "p99_ms": _ms(line.p99_s[minute]) if minute < len(line.p99_s) else None,
            "cost_usd": round(line.cost_usd[minute], 4),
        }
        if line.batch_backlog:
            row["batch_ready_spot"] = line.batch_ready_spot[minute]
            row["batch_ready_on_demand"] = line.batch_ready_on_demand[minute]
            row["batch_backlog"] = round(line.batch_backlog[minute], 1)
        rows.append(row)
    return rows


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


def _pool_hours(document: dict[str, Any], pool: str, kind: str) -> str:
    for cost in document["pools"]:
        if cost["pool"] == pool:
            return f"{cost[f'gpu_hours_{kind}']:,.1f}"
    return "-"


def _batch(document: dict[str, Any], key: str, form: str) -> str:
    value = (document.get("batch") or {}).get(key)
    return "-" if value is None else form.format(value)


def _interruptions(document: dict[str, Any]) -> str:
    counts = [c["interruptions"] for c in document["pools"] if c["pool"] == "batch"]
    return str(counts[0]) if counts else "-"


def table(documents: list[dict[str, Any]], budget_ms: float | None) -> str:
    """The side-by-side table of scenarios."""
    rows: list[tuple[str, list[str]]] = [
        ("requests", [f"{d['requests']:,}" for d in documents]),
        ("p50", [_fmt_ms(d["latency_ms"]["p50"]) for d in documents]),
        ("p95", [_fmt_ms(d["latency_ms"]["p95"]) for d in documents]),
        ("p99", [_fmt_ms(d["latency_ms"]["p99"]) for d in documents]),
        ("max served", [_fmt_ms(d["latency_ms"]["max"]) for d in documents]),
        ("met a full queue", [_share(d["full_queue_share"]) for d in documents]),
        (
            f"SLO (<= {budget_ms:g} ms)" if budget_ms else "SLO",
            [
                "-" if d["slo_attainment"] is None else f"{d['slo_attainment']:.4%}"
                for d in documents
            ],
        ),
        ("rejected + timeouts", [f"{d['rejected'] + d['timeouts']:,}" for d in documents]),
        ("realtime GPU-h", [_pool_hours(d, "realtime", "on_demand") for d in documents]),
        ("batch GPU-h on-demand", [_pool_hours(d, "batch", "on_demand") for d in documents]),
        ("batch GPU-h spot", [_pool_hours(d, "batch", "spot") for d in documents]),
        ("monthly cost", [f"${d['monthly_usd']:,.0f}" for d in documents]),
    ]
    if any("batch" in d for d in documents):
        rows[-1:-1] = [
            ("batch mean wait", [_batch(d, "mean_wait_s", "{:,.1f} s") for d in documents]),
            ("batch max backlog", [_batch(d, "max_backlog", "{:,.0f}") for d in documents]),
            ("spot interruptions", [_interruptions(d) for d in documents]),
        ]
    header = ["", *[d["scenario"] for d in documents]]
    widths = [max(len(r[0]) for r in rows)] + [
        max(len(header[i + 1]), *(len(r[1][i]) for r in rows)) for i in range(len(documents))
    ]
    lines = [
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    for label, values in rows:
        cells = [label.ljust(widths[0])] + [v.rjust(widths[i + 1]) for i, v in enumerate(values)]
        lines.append("  ".join(cells))
    return "\n".join(lines)
