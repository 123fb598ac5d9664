"""`djs bench`'s report: the table of figures against their targets, and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Figures = dict[str, Any]


def _flat(figures: Figures) -> list[tuple[str, Any]]:
    """Figures with nested ones (cpu_us_per_job) spelled out as `key.sub`."""
    flat: list[tuple[str, Any]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            flat += [(f"{key}.{sub}", v) for sub, v in value.items()]
        else:
            flat.append((key, value))
    return flat


_MEETS = {
    ">=": lambda value, target: value >= target,
    "<=": lambda value, target: value <= target,
    "==": lambda value, target: value == target,
}


def print_table(results: dict[str, Figures], targets: dict[str, tuple[str, float]]) -> None:
    print(f"{'figure':45} {'value':>14}  target")
    for scenario, figures in results.items():
        for key, value in _flat(figures):
            if isinstance(value, list) and len(value) > 4:  # a timeline or samples: plotted
                continue
            op_target = targets.get(f"{scenario}.{key}")
            target = f"{op_target[0]} {op_target[1]}" if op_target else ""
            verdict = ""
            if op_target and isinstance(value, int | float):
                ok = _MEETS[op_target[0]](value, op_target[1])
                verdict = "  met" if ok else "  MISSED"
            print(f"{scenario + '.' + key:45} {value!s:>14}  {target}{verdict}")


def _rates_over(timeline: list[tuple[float, int]], window_s: float) -> list[tuple[float, float]]:
    """Jobs finished per second over the trailing window, at each point of the timeline."""
    rates, j = [], 0
    for t, n in timeline[1:]:
        while j + 1 < len(timeline) and timeline[j + 1][0] <= t - window_s:
            j += 1
        t0, n0 = timeline[j]
        rates.append((t, (n - n0) / max(t - t0, 1e-6)))
    return rates


def plot(results: dict[str, Figures], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, figures in results.items():
        timeline = figures.get("timeline")
        if timeline and len(timeline) > 2:
            rates = _rates_over(timeline, window_s=1.0)
            left.plot([t for t, _ in rates], [r for _, r in rates], label=name)
        if figures.get("latencies_ms"):
            right.hist(figures["latencies_ms"], bins=50, alpha=0.6, label=name)
    left.set(title="throughput (jobs finished per second)", xlabel="s")
    right.set(title="latency distribution", xlabel="ms", yscale="log")
    for axes in (left, right):
        if axes.get_legend_handles_labels()[0]:  # the dashboard scenario draws no curve
            axes.legend()
    fig.tight_layout()
    fig.savefig(path)
