"""Figures a person reads at a glance, written as PNG by matplotlib (Agg, no display)."""

import io
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from adapters.files import write_atomic
from adapters.studies.fleet import Report
from solver.search import Result
from solver.units import format_size

GiB = float(1 << 30)


def scenario_figure(title: str, results: Sequence[Result]) -> Figure:
    """Left: store use at each step against each budget's line. Right: steps per budget."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    use, steps = fig.subplots(1, 2)
    for i, r in enumerate(results):
        color = f"C{i % 10}"
        budget = format_size(r.budget)
        if r.plan is not None and r.plan.steps:
            peaks = [s.peak_bytes / GiB for s in r.plan.steps]
            n = len(peaks)
            label = f"{budget}: {n} step{'s' if n > 1 else ''}"
            use.plot(range(1, n + 1), peaks, marker="o", color=color, label=label)
        else:
            use.plot([], [], color=color, label=f"{budget}: no plan fits")
        use.axhline(r.budget / GiB, color=color, linestyle="--", linewidth=1)
    use.set_xlabel("step")
    use.set_ylabel("peak store use (GiB)")
    use.set_title("Disk use per step (dashed: the budget)")
    use.xaxis.set_major_locator(MaxNLocator(integer=True))
    use.legend(fontsize="small")

    budgets = [r.budget / GiB for r in results]
    ys = [len(r.plan) if r.plan is not None else math.nan for r in results]
    steps.plot(budgets, ys, marker="o", drawstyle="steps-post", color="C0", label="steps needed")
    bad = [x for x, r in zip(budgets, results, strict=True) if r.plan is None]
    if bad:
        steps.plot(bad, [0] * len(bad), "x", color="C3", markersize=9, label="no plan fits")
    if results:
        one = results[0].one_step_peak / GiB
        steps.axvline(one, color="C2", linestyle=":", label=f"one step fits: {one:.2f} GiB")
        least = [r.min_feasible_budget for r in results if r.min_feasible_budget]
        if least:
            low = least[0] / GiB
            steps.axvline(low, color="C3", linestyle=":", label=f"no plan below {low:.2f} GiB")
    steps.set_xlabel("budget (GiB)")
    steps.set_ylabel("steps")
    steps.set_title("Steps needed against the budget")
    steps.yaxis.set_major_locator(MaxNLocator(integer=True))
    steps.set_ylim(bottom=-0.3)
    steps.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def fleet_figure(report: Report) -> Figure:
    """Left: hosts by steps needed. Right: disk needed for at most k steps, against the
    disk sizes the fleet has."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    hosts, disks = fig.subplots(1, 2)
    totals = report.totals()
    by_steps = totals.by_steps
    keys = sorted((k for k in by_steps if k != "cannot"), key=int)
    labels = [f"{k} step{'s' if k != '1' else ''}" for k in keys]
    counts = [by_steps[k] for k in keys]
    colors = ["C2" if k == "1" else "C0" for k in keys]
    if "cannot" in by_steps:
        labels.append("cannot")
        counts.append(by_steps["cannot"])
        colors.append("C3")
    bars = hosts.bar(labels, counts, color=colors)
    hosts.bar_label(bars)
    hosts.set_ylabel("hosts")
    hosts.set_title(f"{totals.hosts} hosts by steps the update needs")

    need = report.disk_for_steps()
    ks = sorted(need)
    values = [need[k] / GiB for k in ks]
    bars = disks.bar([f"≤ {k}" for k in ks], values, color="C1")
    disks.bar_label(bars, labels=[f"{v:.2f}" for v in values])
    # The disk sizes the fleet has (the ten most common, when it has more).
    common = Counter(h.disk for h in report.fleet.hosts).most_common(10)
    sizes = sorted(size for size, _ in common)
    for i, size in enumerate(sizes):
        disks.axhline(
            size / GiB,
            color=f"C{(i + 4) % 10}",
            linestyle="--",
            linewidth=1,
            label=f"disk {format_size(size)}",
        )
    disks.axhline(
        report.min_disk_bytes / GiB,
        color="C3",
        linestyle=":",
        label=f"no plan below {report.min_disk_bytes / GiB:.2f} GiB",
    )
    disks.set_xlabel("steps")
    disks.set_ylabel("disk every host needs (GiB)")
    disks.set_title("Disk size for the whole fleet (dashed: disks today)")
    disks.legend(fontsize="small")
    fig.suptitle(report.fleet.name)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    """Write the figure as a PNG, atomically."""
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    write_atomic(Path(path), out.getvalue())
