"""Figures a person reads at a glance, drawn by matplotlib (Agg, no display) and written in
the format the file's name asks for: PNG, SVG or PDF.

matplotlib is an extra (`budget-solve[plots]`): the commands import this module only for
--plot, and without matplotlib importing it is the one-line error that names the extra.
Every size on a figure is in GiB, the unit of its axes.
"""

import io
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from adapters.files import write_atomic
from adapters.studies.fleet import Report
from solver.errors import InputError
from solver.instance import Problem, build_instance
from solver.search import Result
from solver.units import Rounding, parse_size, rounded
from solver.whatif.staircase import Staircase, staircase

MISSING: Final = "--plot needs matplotlib: pip install 'budget-solve[plots]'"

try:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, MaxNLocator
except ImportError as e:  # the extra is not installed (or one of its dependencies)
    raise InputError(MISSING) from e

GiB: Final = float(1 << 30)

# What each format's file says about itself: no date, so the same figure is the same file.
_METADATA: Final[dict[str, dict[str, Any]]] = {
    "png": {},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None},
}
FORMATS: Final = tuple(_METADATA)

# Series that share the left panel differ by marker and line style, not by colour alone.
_MARKERS: Final = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
_LINES: Final = ("-", "--", "-.", ":")
# Plans are drawn side by side, at most this far apart (in steps): plans with the same
# peaks would hide each other.
_DODGE: Final = 0.08
# A decimal size in a title (`10 GB`): the figure says what it is in GiB.
_DECIMAL: Final = re.compile(r"(?<![\w.])[0-9]+(?:\.[0-9]+)?\s?[KMGT]B\b")
_LEGEND: Final[dict[str, Any]] = {
    "loc": "upper center",
    "bbox_to_anchor": (0.5, -0.14),
    "ncols": 2,
    "fontsize": "small",
    "frameon": False,
}


def figure_format(path: Path) -> str:
    """The format `path`'s suffix asks for (png, svg or pdf); another is bad input."""
    fmt = path.suffix.lower().removeprefix(".")
    if fmt not in FORMATS:
        given = f"unknown figure format {path.suffix!r}" if path.suffix else "no format"
        raise InputError(f"--plot {path}: {given} (name it .png, .svg or .pdf)")
    return fmt


def save(fig: Figure, path: Path) -> None:
    """Write the figure in the format its name asks for, atomically."""
    fmt = figure_format(path)
    out = io.BytesIO()
    # SVG ids are random unless salted: the same figure, the same file.
    with rc_context({"svg.hashsalt": "budget-solve"}):
        fig.savefig(out, format=fmt, dpi=110, metadata=_METADATA[fmt])
    write_atomic(Path(path), out.getvalue())


def gib(n: float, rounding: Rounding = Rounding.NEAREST) -> str:
    """Bytes in GiB, the figures' unit: two decimals, or one when the second is 0;
    rounded up for a budget that works, down for a floor."""
    return f"{rounded(n / GiB, rounding, 2).removesuffix('0')} GiB"


def titled(name: str) -> str:
    """A study's name as a figure's title, with the GiB of each decimal size in it (a
    "10 GB VPS" over axes in GiB)."""
    sizes = [f"{m[0]} = {gib(parse_size(m[0]))}" for m in _DECIMAL.finditer(name)]
    return f"{name} ({'; '.join(sizes)})" if sizes else name


def scenario_stairs(problem: Problem, results: Sequence[Result]) -> Staircase:
    """The stairs a scenario's figure draws: down to its smallest budget, or, when some
    budget has no plan, down to the smallest budget a plan is known for."""
    nothing = any(r.plan is None for r in results)
    down_to = None if nothing or not results else min(r.budget for r in results)
    return staircase(build_instance(problem), known=results, down_to=down_to)


def scenario_figure(title: str, results: Sequence[Result], stairs: Staircase) -> Figure:
    """Left: store use at each step against each budget's line. Right: the steps needed
    against the budget, changing where the answer changes (`stairs`)."""
    fig = Figure(figsize=(12, 6), layout="constrained")
    FigureCanvasAgg(fig)
    use, steps = fig.subplots(1, 2)
    _disk_use(use, results)
    _steps(steps, results, stairs)
    fig.suptitle(titled(title))
    return fig


def _disk_use(ax: Any, results: Sequence[Result]) -> None:
    """Each budget's plan, its peak at every step, side by side: plans alike stay apart."""
    spread = min(_DODGE, 0.5 / max(1, len(results)))
    for i, r in enumerate(results):
        color = f"C{i % 10}"
        if r.plan is not None and r.plan.steps:
            peaks = [s.peak_bytes for s in r.plan.steps]
            n = len(peaks)
            offset = (i - (len(results) - 1) / 2) * spread
            ax.plot(
                [k + 1 + offset for k in range(n)],
                [p / GiB for p in peaks],
                color=color,
                marker=_MARKERS[i % len(_MARKERS)],
                linestyle=_LINES[i % len(_LINES)],
                label=f"{gib(r.budget)}: {n} step{'s' if n > 1 else ''}, "
                f"peak {gib(max(peaks), Rounding.UP)}",
            )
            ax.axhline(r.budget / GiB, color=color, linestyle="--", linewidth=1)
        else:
            # The budget's line is all there is to show: it is the legend's entry.
            verdict = "nothing to do" if r.plan is not None else "no plan fits"
            ax.axhline(
                r.budget / GiB,
                color=color,
                linestyle="--",
                linewidth=1.5,
                label=f"{gib(r.budget)}: {verdict}",
            )
    ax.set_xlabel("step")
    ax.set_ylabel("peak store use (GiB)")
    ax.set_title("Disk use at each step (dashed: each budget)")
    most = max([1, *(len(r.plan) for r in results if r.plan)])
    # Every step its tick; MaxNLocator gives fractions when there are few.
    ax.xaxis.set_major_locator(FixedLocator(range(1, most + 1), nbins=12))
    ax.set_xlim(0.5, most + 0.5)
    ax.legend(**_LEGEND)


def _steps(ax: Any, results: Sequence[Result], stairs: Staircase) -> None:
    """The stairs: where fewer steps start to fit; bands where that is not proven; what no
    plan fits; the scenario's own budgets on it."""
    budgets = [r.budget for r in results]
    least = stairs.least
    lo = min([*budgets, least] if least is not None else budgets, default=0)
    if any(r.plan is None for r in results):
        lo = min(lo, stairs.floor)
    one = stairs.stairs[0].budget if stairs.stairs else None
    hi = max([*budgets, one] if one is not None else budgets, default=lo + 1)
    pad = max(hi - lo, 1 << 26) * 0.06
    left, right = lo - pad, hi + pad
    ax.set_xlim(left / GiB, right / GiB)
    top = max([1, *(s.steps for s in stairs.stairs), *(len(r.plan) for r in results if r.plan)])

    if stairs.stairs:
        edges = [s.budget / GiB for s in reversed(stairs.stairs)] + [right / GiB]
        values = [s.steps for s in reversed(stairs.stairs)]
        ax.stairs(values, edges, baseline=None, color="C0", linewidth=2, label="fewest steps found")
        ax.plot(
            [s.budget / GiB for s in stairs.stairs],
            [s.steps for s in stairs.stairs],
            "o",
            color="C0",
            label="k steps fit from here (a plan validated)",
        )
        _unproven(ax, stairs, left, right)
    if one is not None:
        ax.axvline(
            one / GiB,
            color="C2",
            linestyle=":",
            label=f"one step fits from {gib(one, Rounding.UP)}",
        )
    _no_plan(ax, stairs, left)

    planned = [(r.budget / GiB, len(r.plan)) for r in results if r.plan is not None]
    if planned:
        xs, ys = zip(*planned, strict=True)
        ax.plot(
            xs,
            ys,
            "D",
            markerfacecolor="white",
            color="C1",
            markersize=8,
            zorder=3,
            label="planned at the scenario's budgets",
        )
    failed = [r.budget / GiB for r in results if r.plan is None]
    if failed:
        # At the top, where "more steps than any" is: never at 0, which reads as
        # "nothing to do".
        ax.plot(
            failed,
            [0.95] * len(failed),
            "x",
            color="C3",
            markersize=10,
            markeredgewidth=2,
            transform=ax.get_xaxis_transform(),
            label="no plan fits a budget of the scenario",
        )
    # Nothing to do is 0 steps; else the axis starts at one step.
    ax.set_ylim(0.5 if all(r.plan is None or r.plan.steps for r in results) else -0.5, top + 1.2)
    ax.set_xlabel("budget (GiB)")
    ax.set_ylabel("steps")
    ax.set_title("Steps needed against the budget")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(**_LEGEND)


def _unproven(ax: Any, stairs: Staircase, left: float, right: float) -> None:
    """Between the fewest steps found and the fewest not ruled out: hatched."""
    edges = {left, right, *(s.budget for s in stairs.stairs), *stairs.lower}
    xs = sorted(x for x in edges if left <= x <= right)
    found = [stairs.steps_at(int(x)) for x in xs]
    fewest = [stairs.fewest_at(int(x)) for x in xs]
    gaps = [f is not None and k is not None and k < f for f, k in zip(found, fewest, strict=True)]
    if not any(gaps):
        return
    ax.fill_between(
        [x / GiB for x in xs],
        [math.nan if k is None else k for k in fewest],
        [math.nan if f is None else f for f in found],
        step="post",
        facecolor=(0.12, 0.47, 0.71, 0.15),
        edgecolor=(0.12, 0.47, 0.71, 0.6),
        hatch="///",
        linewidth=0,
        label="not proven: fewer steps may fit",
    )


def _no_plan(ax: Any, stairs: Staircase, left: float) -> None:
    """Left of the stairs: no plan fits (proven), then no plan found (not proven either
    way), or, when the stairs stop early, more steps than they show."""
    least = stairs.least
    if least is None or least <= left:
        return
    if not stairs.complete:
        ax.axvspan(
            left / GiB,
            least / GiB,
            facecolor="none",
            edgecolor="0.5",
            hatch="..",
            linewidth=0,
            label=f"not searched: more than {stairs.stairs[-1].steps} steps, or no plan",
        )
        return
    floor = max(stairs.floor, left)
    if stairs.floor > left:
        ax.axvspan(
            left / GiB,
            floor / GiB,
            color="0.8",
            label=f"no plan fits (proven below {gib(stairs.floor, Rounding.DOWN)})",
        )
    if floor < least:
        ax.axvspan(
            floor / GiB,
            least / GiB,
            facecolor="0.93",
            edgecolor="0.5",
            hatch="xx",
            linewidth=0,
            label=f"no plan found below {gib(least, Rounding.UP)} (none proven impossible)",
        )


def fleet_figure(report: Report) -> Figure:
    """Left: hosts by steps needed. Right: disk needed for at most k steps, against the
    disk sizes the fleet has."""
    fig = Figure(figsize=(12, 5.6), layout="constrained")
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
    hosts.yaxis.set_major_locator(MaxNLocator(integer=True))
    hosts.set_title(f"{totals.hosts} hosts by steps the update needs")

    need = report.disk_for_steps()
    ks = sorted(need)
    bars = disks.bar([f"≤ {k}" for k in ks], [need[k] / GiB for k in ks], color="C1")
    for text in disks.bar_label(bars, labels=[gib(need[k], Rounding.UP) for k in ks]):
        # Above the lines of the disks that cross the bar's top.
        text.set_bbox({"facecolor": "white", "edgecolor": "none", "pad": 1})
        text.set_zorder(4)
    # The disk sizes the fleet has (the ten most common, when it has more).
    common = Counter(h.disk for h in report.fleet.hosts).most_common(10)
    for i, (size, count) in enumerate(sorted(common)):
        disks.axhline(
            size / GiB,
            color=f"C{(i + 4) % 10}",
            linestyle="--",
            linewidth=1,
            label=f"disk {gib(size)}: {count} host{'s' if count > 1 else ''}",
        )
    disks.axhline(
        report.min_disk_bytes / GiB,
        color="C3",
        linestyle=":",
        linewidth=1.5,
        label=f"any number of steps: {gib(report.min_disk_bytes, Rounding.UP)}",
    )
    disks.set_xlabel("steps")
    disks.set_ylabel("disk every host needs (GiB)")
    disks.set_title("Disk size for the whole fleet (dashed: disks today)")
    # Beside the axes, one line a row, in the order the lines stack.
    disks.legend(
        handles=_handles(disks),
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        fontsize="small",
        frameon=False,
    )
    fig.suptitle(titled(report.fleet.name))
    return fig


def _handles(ax: Any) -> list[Line2D]:
    """The axes' labelled lines, the largest first: as they stack on the axes."""
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    return sorted(lines, key=lambda line: -float(line.get_ydata()[0]))
