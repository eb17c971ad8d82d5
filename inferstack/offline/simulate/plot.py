"""`--plot`: one PNG of the runs (matplotlib, Agg backend, no display needed).

Four time panels, every scenario on each: traffic, ready replicas per pool, p99 per minute
against the budget, cumulative cost; and a bar chart of the monthly cost by scenario and pool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plot(document: dict[str, Any], path: Path) -> None:
    """Draw the `--json` document's scenarios into `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = document["scenarios"]
    figure, axes = plt.subplots(6, 1, figsize=(11, 19), constrained_layout=True)
    traffic, replicas, latency, cost, bars, lever_axis = axes
    first = scenarios[0]["timeline"]
    hours = [row["minute"] / 60 for row in first]
    traffic.plot(hours, [row["rps"] for row in first], color="black", linewidth=0.8)
    traffic.set_ylabel("requests/s")
    traffic.set_title(f"{document['stack']}: {document['traffic']}")
    budget = document.get("latency_budget_ms")
    for number, scenario in enumerate(scenarios):
        color = f"C{number}"
        rows = scenario["timeline"]
        x = [row["minute"] / 60 for row in rows]
        name = scenario["scenario"]
        replicas.step(
            x, [row["realtime_ready"] for row in rows], where="post", label=name, color=color
        )
        if rows and "batch_ready_spot" in rows[0]:
            batch = [row["batch_ready_spot"] + row["batch_ready_on_demand"] for row in rows]
            replicas.step(
                x, batch, where="post", linestyle=":", label=f"{name} (batch)", color=color
            )
        p99 = [row["p99_ms"] if row["p99_ms"] is not None else float("nan") for row in rows]
        latency.plot(x, p99, linewidth=0.8, label=name, color=color)
        cost.plot(x, [row["cost_usd"] for row in rows], label=name, color=color)
    if budget:
        latency.axhline(budget, color="red", linestyle="--", linewidth=0.8, label="budget")
    latency.set_yscale("log")
    replicas.set_ylabel("ready replicas")
    latency.set_ylabel("p99 per minute (ms)")
    cost.set_ylabel("cumulative cost (USD)")
    cost.set_xlabel("simulated hours")
    for axis in (replicas, latency, cost):
        axis.legend(fontsize=7, loc="upper right")
    names = [scenario["scenario"] for scenario in scenarios]
    bottom = [0.0] * len(scenarios)
    for pool in ("realtime", "batch"):
        values = [
            sum(c["monthly_usd"] for c in scenario["pools"] if c["pool"] == pool)
            for scenario in scenarios
        ]
        bars.bar(names, values, bottom=bottom, label=pool)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    bars.set_ylabel("monthly cost (USD)")
    bars.set_title("monthly cost by configuration and pool")
    bars.legend(fontsize=7)
    steps = document.get("levers") or []
    if steps:
        labels = [step["lever"] for step in steps]
        values = [step["monthly_usd"] for step in steps]
        lever_axis.bar(labels, values, color="tab:green")
        for index, step in enumerate(steps[1:], start=1):
            lever_axis.annotate(
                f"-${step['saves_usd']:,.0f}", (index, values[index]), ha="center", va="bottom"
            )
        lever_axis.set_ylabel("monthly cost (USD)")
        lever_axis.set_title("cost by lever: each applied on top of the ones before (simulated)")
    else:
        lever_axis.set_visible(False)
    figure.savefig(path, dpi=90)
    plt.close(figure)
