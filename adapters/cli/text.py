"""Human output: a table of steps with a bar against the budget, and a one-line verdict."""

import shutil
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from adapters.cli.escape import one_line
from adapters.ticker import Ticker
from solver.search import Result, Status
from solver.units import Rounding, format_apart, format_size

if TYPE_CHECKING:
    # The studies and the diffs are imported where they are drawn: a command's --help,
    # which imports this module, loads no solver.
    from adapters.studies.fleet import FleetProgress, Report
    from adapters.studies.rollout import Rollout
    from adapters.studies.scenario import Outcome
    from solver.diff import Diff

BAR = 20


def signed_size(n: int) -> str:
    """A change of size: +1.2 MiB, -300.0 KiB."""
    return ("-" if n < 0 else "+") + format_size(abs(n))


def bar(value: int, whole: int, width: int = BAR, cells: str = "█·") -> str:
    """`value` against `whole` as a bar of `width` cells (full when `whole` is 0), drawn
    with `cells`' full and empty one."""
    filled = width if whole <= 0 else min(width, round(width * value / whole))
    return cells[0] * filled + cells[1] * (width - filled)


def bar_cells(out: TextIO) -> str:
    """The bar's cells for `out`: in ASCII where its encoding (PYTHONIOENCODING=ascii, a
    Latin-1 locale) has no block."""
    try:
        "█·".encode(getattr(out, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "#."
    return "█·"


def fleet_progress(p: "FleetProgress") -> str:
    return (
        f"{bar(p.hosts, p.hosts_total, 24)} {p.hosts}/{p.hosts_total} hosts "
        f"({p.closures}/{p.closures_total} distinct closures)"
    )


def no_plan(result: Result) -> str:
    """What is known when no plan was found: proven or not, and the budget that would do.

    A budget that works is rounded up and a bound down (solver/units.py), with as many
    decimals as it takes for different sizes to read differently."""
    found = result.min_feasible_budget
    lower = result.min_budget_lower_bound
    budget, found_text, lower_text = format_apart(
        (result.budget, Rounding.NEAREST), (found, Rounding.UP), (lower, Rounding.DOWN)
    )
    if found is None:
        least = "no plan is known for any budget"
    elif result.min_budget_proven:
        least = f"the smallest budget that works is {found_text} (exactly {found:,} B)"
    elif lower is not None and lower > result.budget:
        least = f"the smallest budget that works is between {lower_text} and {found_text}"
    else:
        least = f"a plan is known for {found_text}"
    if result.status is Status.INFEASIBLE:
        return f"infeasible: no plan fits {budget} (proven); {least}"
    floor = lower_text if lower is not None else "?"
    return (
        f"unknown: no plan found under {budget} and none proven impossible within the time "
        f"limit (no plan can need less than {floor}); {least}; try a larger --time-limit"
    )


def render_diffs(diffs: Sequence["Diff"], out: TextIO) -> None:
    """Every package each step changes, grouped as nvd groups them (solver/diff.py)."""
    from solver.diff import Kind
    from solver.diff import render as render_diff

    for index, diff in enumerate(diffs, 1):
        counts = ", ".join(
            f"{n} {'rebuilt' if kind is Kind.CHANGED else kind.value}"
            for kind, n in diff.counts.items()
            if n
        )
        out.write(f"\nstep {index} of {len(diffs)}: {counts or 'the glue only'}\n")
        out.writelines(f"  {line}\n" for line in render_diff(diff))


def verdict(result: Result) -> str:
    """One line: the steps and how good they are, the peak against the budget, and what
    one step would need; sizes that differ never print alike (`format_apart`)."""
    if result.plan is None:
        return no_plan(result)
    assert result.plan is not None
    steps = len(result.plan)
    if steps == 0:
        return "nothing to do: the current system is the target"
    noun = "step" if steps == 1 else "steps"
    quality = (
        "fewest possible"
        if result.lower_bound_steps >= steps
        else f"at least {result.lower_bound_steps} needed"
    )
    extra = ""
    if result.greedy_steps and result.greedy_steps > steps:
        extra = f", greedy needs {result.greedy_steps}"
    budget, peak_text, one_step = format_apart(
        (result.budget, Rounding.NEAREST),
        (result.peak_bytes, Rounding.NEAREST),
        (result.one_step_peak if steps > 1 else None, Rounding.NEAREST),
    )
    peak = f"peak {peak_text} of {budget}"
    if result.status is not Status.OPTIMAL and result.peak_bound < result.peak_bytes:
        # The bound is CP-SAT's for plans of as many steps, or the floor of any plan: a
        # bound on the lowest peak of `steps` steps either way.
        gap = format_size(result.peak_bytes - result.peak_bound)
        peak += f" (at most {gap} above the lowest {steps}-step peak)"
    one = "" if steps == 1 else f"; one step would need {one_step}"
    return f"plan: {steps} {noun} ({quality}{extra}), {peak}{one}"


def render(result: Result, out: TextIO, *, cells: str | None = None) -> None:
    """The table of steps and the verdict; `cells` for the bars (`bar_cells`) when `out`
    is a buffer for another stream."""
    if result.plan is not None and result.plan.steps:
        width = shutil.get_terminal_size((100, 24)).columns
        changes_width = max(24, width - 67)
        out.write(
            f"{'step':>4}  {'changes':<{changes_width}}  {'peak':>10}  {'after':>10}  "
            f"{'change':>11}  budget\n"
        )
        cells = cells or bar_cells(out)
        for step in result.plan.steps:
            peak = bar(step.peak_bytes, result.budget, cells=cells)
            out.write(
                f"{step.index:>4}  {step.summary(changes_width):<{changes_width}}  "
                f"{format_size(step.peak_bytes):>10}  {format_size(step.store_bytes_after):>10}  "
                f"{signed_size(step.store_delta):>11}  {peak}\n"
            )
    out.write(verdict(result) + "\n")


class Spinner:
    """Shows what the solver is doing once it has taken more than a second."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(
        self, stream: TextIO | None = None, delay: float = 1.0, enabled: bool = True
    ) -> None:
        # stderr as it is now, not as it was when this module was imported.
        self.stream = stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.message = "reading closures"
        self._detail = ""
        self._shown = ""
        self._frame = 0
        self._start = time.monotonic()
        self._tty = stream.isatty()
        self._ticker = Ticker(0.2, self._draw, delay=delay)

    def __call__(self, message: str) -> None:
        # A message may name what the user gave (a profile, a host): one line, no escapes.
        self.message = one_line(message)
        self._detail = ""

    def detail(self, text: str) -> None:
        """A live figure after the message (bytes so far); shown on a terminal only."""
        self._detail = text

    def clear(self) -> None:
        """Erase the spinner's line, so that other output starts on a clean one."""
        if self._tty and self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def __enter__(self) -> "Spinner":
        if self.enabled:
            self._ticker.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ticker.__exit__(kind, exc, tb)
        self.clear()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self._start
        if self._tty:
            detail = f": {self._detail}" if self._detail else ""
            frame = self.FRAMES[self._frame % len(self.FRAMES)]
            self.stream.write(f"\r\033[K{frame} {self.message}{detail} ({elapsed:.0f}s)")
            self.stream.flush()
            self._shown = self.message
        elif self.message != self._shown:
            self.stream.write(f"budget-solve: {self.message} ({elapsed:.1f}s)\n")
            self.stream.flush()
            self._shown = self.message
        self._frame += 1


def render_scenario(outcome: "Outcome", out: TextIO) -> None:
    """One scenario: what changes, then one row per budget."""
    old, new = outcome.problem.old, outcome.problem.new
    out.write(
        f"{outcome.scenario.name}: {len(old):,} → {len(new):,} paths "
        f"({outcome.changed_paths:,} new), {outcome.changed_components} of "
        f"{len(outcome.problem.split.components)} components change; "
        f"{format_size(old.size())} → {format_size(new.size())}\n"
    )
    for note in outcome.scenario.notes:
        out.write(f"note: {note}\n")
    results = outcome.results
    if results:
        first = results[0]
        # As the one-step row's peak prints it.
        out.write(f"one step needs {format_size(first.one_step_peak)}\n")
    out.write(f"\n{'budget':>10}  {'steps':>5}  {'peak':>10}  {'status':<10}  notes\n")
    for r in results:
        if r.plan is None:
            budget, need = format_apart(
                (r.budget, Rounding.NEAREST), (r.min_feasible_budget or 0, Rounding.UP)
            )
            row = f"{budget:>10}  {'-':>5}  {'-':>10}  {r.status.value:<10}  "
            exact = "" if r.min_budget_proven else " (not proven smallest)"
            out.write(row + f"a plan is known for {need}{exact}\n")
            continue
        note = ""
        if r.status is Status.FEASIBLE:
            proven = r.lower_bound_steps >= len(r.plan)
            note = "steps proven minimal" if proven else f"at least {r.lower_bound_steps} needed"
        if r.greedy_steps and r.greedy_steps > len(r.plan):
            note += ("; " if note else "") + f"greedy needs {r.greedy_steps}"
        out.write(
            f"{format_size(r.budget):>10}  {len(r.plan):>5}  {format_size(r.peak_bytes):>10}  "
            f"{r.status.value:<10}  {note}\n"
        )


def render_rollout(rollout: "Rollout", out: TextIO) -> None:
    """Per host of `fleet --apply`: done (steps, measured peak), failed (at which step,
    why), skipped (why, and the disk it would need), not started."""
    from adapters.studies.rollout import HostStatus

    counts = rollout.counts()
    out.write(
        f"{rollout.fleet}: "
        + "   ".join(f"{status.value} {counts[status]}" for status in HostStatus)
        + "\n\n"
    )
    for h in rollout.hosts:
        if h.status is HostStatus.DONE:
            peak = format_size(h.measured_peak_bytes) if h.measured_peak_bytes else "-"
            what = f"{h.steps} step{'s' if h.steps != 1 else ''}, measured peak {peak}"
        elif h.status is HostStatus.FAILED:
            at = f"at step {h.failed_step}: " if h.failed_step else ""
            what = f"{at}{h.reason}"
        elif h.needed_bytes:
            what = f"{h.reason} (a plan needs {format_size(h.needed_bytes, Rounding.UP)} of store)"
        else:
            what = h.reason or ""
        out.write(f"{h.name:<20} {h.status.value:<12} {what}\n")


def render_fleet(report: "Report", out: TextIO, *, max_hosts: int = 40) -> None:
    """Fleet totals, the disk-size table, and the hosts (the ones that need attention first)."""
    t = report.totals()
    out.write(
        f"{report.fleet.name}: {t.hosts} hosts, {len(report.answers)} distinct closures\n"
        f"  one step: {t.one_step}   several steps: {t.multi_step}   "
        f"cannot upgrade: {t.cannot}\n"
    )
    for note in report.fleet.notes:
        out.write(f"note: {note}\n")
    out.write("\ndisk every host needs\n")
    for k, size in report.disk_for_steps().items():
        noun = "step" if k == 1 else "steps"
        out.write(f"  at most {k} {noun:<5}  {format_size(size, Rounding.UP):>10}\n")
    out.write(f"  at all           {format_size(report.min_disk_bytes, Rounding.UP):>10}\n")
    order = {"cannot": 0, "steps": 1, "one-step": 2}
    rows = sorted(report.hosts(), key=lambda r: (order[r.verdict], -(r.steps or 0), r.name))
    out.write(f"\n{'host':<20} {'disk':>10} {'steps':>5}  verdict\n")
    for r in rows[:max_hosts]:
        if r.steps is None:
            verdict = f"cannot: needs a {format_size(r.needed_disk_bytes or 0, Rounding.UP)} disk"
        elif r.steps <= 1:
            verdict = "one step"
        else:
            verdict = f"{r.steps} steps"
        steps = "-" if r.steps is None else str(r.steps)
        out.write(f"{r.name:<20} {format_size(r.disk_bytes):>10} {steps:>5}  {verdict}\n")
    if len(rows) > max_hosts:
        out.write(f"... and {len(rows) - max_hosts} more hosts (--json lists them all)\n")
