"""Figures a person reads at a glance, written as PNG by matplotlib (Agg, no display)."""

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from solver.planner import Result
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


def save_png(fig: Figure, path: Path) -> None:
    """Write the figure atomically: a temporary file beside `path`, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=110)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
