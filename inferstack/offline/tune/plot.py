"""`inferstack tune --plot`: the price of each nine as one PNG (matplotlib, Agg backend).

Monthly cost against SLO attainment on a nines axis (90% -> 1, 99% -> 2, 99.9% -> 3), as
`inferstack simulate --plot` draws its runs: the frontier (at each level, the cheapest
configuration found that meets it, mean over seeds, labelled with the attainment it reached and
its changes), the SLO as a vertical line, and the stack as it is, the tuned one and the
competent default at the attainment they reach.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

NINES_CAP = 6.0
"""Where 100% attainment is drawn (it has infinitely many nines)."""


def nines(attainment: float) -> float:
    """An attainment share as its number of nines: -log10(1 - a), capped at `NINES_CAP`."""
    missed = 1.0 - attainment
    return NINES_CAP if missed <= 10**-NINES_CAP else -math.log10(missed)


def write_plot(document: dict[str, Any], path: Path) -> None:
    """Draw the `--json` document's frontier and scenarios into `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    found = [row for row in document["frontier"] if row["found"]]
    if found:
        # Each level at its own place on the axis (several can share one configuration).
        xs = [nines(row["attainment_target"] / 100) for row in found]
        ys = [row["monthly_usd"] for row in found]
        axis.step(xs, ys, where="post", color="C0", linewidth=1.2)
        axis.scatter(xs, ys, color="C0", zorder=3, label="cheapest found for each level")
        for row, x, y in zip(found, xs, ys, strict=True):
            changes = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in row["changes"].items())
            axis.annotate(
                f"${y:,.0f} ({row['slo_attainment']:.3%})\n{changes or 'as is'}",
                (x, y),
                textcoords="offset points",
                xytext=(4, 8),
                fontsize=7,
                rotation=20,
            )
    markers = {"as is": ("C1", "s"), "tuned": ("C2", "D"), "competent default": ("C3", "^")}
    for scenario in document["scenarios"]:
        mean = scenario.get("mean_over_seeds")
        style = markers.get(scenario["scenario"])
        if mean is None or style is None:
            continue
        axis.scatter(
            [nines(mean["slo_attainment"])],
            [mean["monthly_usd"]],
            color=style[0],
            marker=style[1],
            s=60,
            zorder=4,
            label=f"{scenario['scenario']} ({mean['slo_attainment']:.3%})",
        )
    target = document["slo_attainment_target"] / 100
    axis.axvline(nines(target), color="red", linestyle="--", linewidth=0.8, label="SLO")
    ticks = [1, 2, 3, 4, 5]
    labels = [f"{100 - 100 * 10**-t:g}%" for t in ticks]
    axis.set_xticks([*ticks, NINES_CAP], [*labels, "100%"])
    axis.set_xlim(0.8, NINES_CAP + 0.4)
    axis.set_xlabel(
        f"SLO attainment (requests within {document['latency_budget_ms']:g} ms; nines scale)"
    )
    axis.set_ylabel("monthly cost (USD, simulated)")
    axis.set_title(
        f"{document['stack']}: the price of each nine ({document['traffic']}, "
        f"{document['days']:g} day(s) x {document['seeds']} seed(s))",
        fontsize=10,
    )
    axis.legend(fontsize=7, loc="best")
    figure.savefig(path, dpi=90)
    plt.close(figure)


__all__ = ["nines", "write_plot"]
