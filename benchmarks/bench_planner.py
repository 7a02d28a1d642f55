"""Planner benchmark: our plans against the baselines, on closures shaped like real ones.

    python3 benchmarks/bench_planner.py [--time-limit 30] [--workers 2] [--quick]
                                        [--only SUBSTRING] [--readme]

Every instance is a current system and an update of it, from fixed seeds, so every run
measures the same work:

- systems: the real 913-path NixOS closure in ../shared/data/real (when present) and
  generated ones of 1,000 to 25,000 paths with 50 to 1,000 top-level packages: a core of
  libraries most things reference, private dependencies, a long tail of sizes with a few
  paths of hundreds of MiB (kernel, firmware, LLVM-sized);
- updates: `leaf` (2 % of the packages bump themselves only), `typical` (random bumps
  until Nix's hash propagation has changed 20 % of the paths, about what one nixpkgs
  update does to a desktop), `heavy` (60 %) and `mass` (glibc: every path is rebuilt);
- budgets: 10 % (`tight`), 50 % (`half`) and 90 % (`loose`) of the way from the lowest
  peak a plan is known to reach (or the larger of the two systems, if higher) to the need
  of the one-step upgrade. `leaf` and the systems of 10,000 paths and more run `tight`
  and `half` only, so that the whole suite takes about ten minutes.

Per instance, side by side: the plain one-step upgrade (its need, and whether it fits),
one change per step in greedy order (steps, peak), greedy with merging (steps, peak, and
the time of both), and the planner: steps, proven lower bound on steps, peak and the
proven bound on it, time to the first plan, time to the proof that no plan has fewer
steps (or the gap in steps at the time limit), total time, peak memory. The planner runs
as the command line does, with its default peak gap (0.01 %). Each instance runs in a
fresh process, so its memory is its own. Figures are printed, not asserted; `--readme`
also writes the summary table into README.md. The closure-reading benchmark is
benchmarks/bench_read.py.
"""

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.journal import write_atomic  # noqa: E402
from solver.closure import Closure  # noqa: E402
from solver.synthetic import generate_system, propagate  # noqa: E402

REAL = ROOT.parent / "shared/data/real/lf-blog_nixcon2022_nixos-system-micro_closure-graph.json"

# (paths, top-level packages) of the generated systems.
SYSTEMS = [(1_000, 50), (3_000, 150), (10_000, 300), (25_000, 500), (25_000, 1_000)]
UPDATES = ("leaf", "typical", "heavy", "mass")
BUDGETS = ("tight", "half", "loose")
QUICK = {"real-913", "gen-1000-50", "gen-3000-150"}
README_START = "<!-- bench_planner:start -->"
README_END = "<!-- bench_planner:end -->"


@dataclass(frozen=True)
class Spec:
    system: str
    update: str
    budget: str

    @property
    def name(self) -> str:
        return f"{self.system}/{self.update}/{self.budget}"


@dataclass
class Row:
    name: str
    paths: int
    changed_paths: int
    components: int
    groups: int
    budget: int
    one_step: int
    seq_steps: int
    seq_peak: int
    merge_steps: int | None
    merge_peak: int
    baseline_s: float
    steps: int | None
    lower_bound: int
    peak: int
    peak_bound: int
    status: str
    model_s: float
    first_plan_s: float | None
    proven_s: float | None
    total_s: float
    memory_mib: float


def system(name: str) -> Closure:
    if name.startswith("real-"):
        from adapters.readers import read_source

        return read_source(str(REAL))
    _, paths, comps = name.split("-")
    return generate_system(int(paths), int(comps), seed=int(paths) + int(comps))


def update(old: Closure, kind: str, seed: int) -> Closure:
    """An update of `old`: new hashes for the seeds and everything that reaches them."""
    rng = random.Random(seed)

    def grow(info):  # type: ignore[no-untyped-def]
        return max(120, int(info.nar_size * rng.uniform(0.97, 1.06)))

    if kind == "leaf":
        system_path = next(p for p in old if p.endswith("-system-path"))
        packages = sorted(old[system_path].references)
        seeds = rng.sample(packages, k=max(1, len(packages) // 50))
    elif kind == "mass":
        seeds = [next(p for p in old if "-glibc-" in p)]
    else:
        # Random bumps until hash propagation has changed the wanted share of the paths
        # (a nixpkgs update replaces about a fifth of a desktop's closure).
        share = {"typical": 0.2, "heavy": 0.6}[kind]
        referrers: dict[str, list[str]] = {}
        for info in old.infos():
            for ref in info.references:
                referrers.setdefault(ref, []).append(info.path)
        candidates = sorted(p for p in old if "-glibc-" not in p)
        rng.shuffle(candidates)
        changed: set[str] = set()
        seeds = []
        for path in candidates:
            if len(changed) >= share * len(old):
                break
            if path in changed:
                continue
            # A bump whose propagation would overshoot the share by more than 5 % of the
            # paths is skipped; the walk gives up as soon as it knows.
            allowed = (share + 0.05) * len(old) - len(changed)
            reached = {path}
            stack = [path]
            while stack and len(reached) <= allowed:
                for parent in referrers.get(stack.pop(), ()):
                    if parent not in changed and parent not in reached:
                        reached.add(parent)
                        stack.append(parent)
            if len(reached) <= allowed:
                seeds.append(path)
                changed |= reached
    return propagate(old, seeds, rng=rng, resize=grow)


def run(spec: Spec, time_limit: float, workers: int) -> Row:
    """One instance, start to finish; runs in a process of its own."""
    from solver.components import split_components
    from solver.greedy import greedy_sequence, merge_greedy
    from solver.instance import Problem, build_instance
    from solver.plan import evaluate, one_step
    from solver.planner import min_peak_plan, plan_upgrade
    from solver.validate import validate

    old = system(spec.system)
    new = update(old, spec.update, seed=len(old))
    started = time.perf_counter()
    split = split_components(old, new)
    problem = Problem(old, new, split)
    inst = build_instance(problem)
    model_s = time.perf_counter() - started
    both = one_step(inst).peak_bytes
    larger = max(old.size(), new.size())
    baseline_started = time.perf_counter()
    sequence = greedy_sequence(inst)
    seq = evaluate(inst, sequence)
    baseline_s = time.perf_counter() - baseline_started
    # From the lowest peak any plan is known to reach (or the larger system, if higher;
    # no plan goes below it) to the one-step need.
    low = max(larger, min_peak_plan(inst).peak_bytes)
    budget = low + (both - low) * {"tight": 1, "half": 5, "loose": 9}[spec.budget] // 10
    merge_started = time.perf_counter()
    merged = evaluate(inst, merge_greedy(inst, sequence, budget))
    baseline_s += time.perf_counter() - merge_started
    result = plan_upgrade(inst, budget, time_limit=time_limit, workers=workers)
    if result.plan:
        assert validate(problem, result.plan, budget).peak == result.peak_bytes
    return Row(
        name=spec.name,
        paths=len(old),
        changed_paths=len(set(new) - set(old)),
        components=len(split.changed),
        groups=len(inst.groups),
        budget=budget,
        one_step=both,
        seq_steps=len(seq),
        seq_peak=seq.peak_bytes,
        merge_steps=len(merged) if merged.peak_bytes <= budget else None,
        merge_peak=merged.peak_bytes,
        baseline_s=baseline_s,
        steps=len(result.plan) if result.plan else None,
        lower_bound=result.lower_bound_steps,
        peak=result.peak_bytes,
        peak_bound=result.peak_bound,
        status=result.status.value,
        model_s=model_s,
        first_plan_s=result.first_plan_seconds,
        proven_s=result.steps_proven_seconds,
        total_s=model_s + result.seconds,
        memory_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def _secs(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f}"


COLUMNS = [
    # header, width, cell
    ("instance", 31, lambda r: r.name),
    ("paths", 6, lambda r: f"{r.paths}"),
    ("chg%", 5, lambda r: f"{100 * r.changed_paths / r.paths:.0f}"),
    ("comps", 6, lambda r: f"{r.components}"),
    ("budget", 7, lambda r: _gib(r.budget)),
    ("1-step", 7, lambda r: _gib(r.one_step) + ("*" if r.one_step <= r.budget else " ")),
    ("seq", 5, lambda r: f"{r.seq_steps}" if r.seq_peak <= r.budget else "-"),
    ("peak", 7, lambda r: _gib(r.seq_peak)),
    ("merge", 6, lambda r: f"{r.merge_steps}" if r.merge_steps else "-"),
    ("peak", 7, lambda r: _gib(r.merge_peak) if r.merge_steps else "-"),
    ("s", 5, lambda r: f"{r.baseline_s:.2f}"),
    ("|", 1, lambda r: "|"),
    ("steps", 6, lambda r: f"{r.steps}" if r.steps else "-"),
    ("lb", 4, lambda r: f"{r.lower_bound}"),
    ("peak", 7, lambda r: _gib(r.peak) if r.steps else "-"),
    ("gap%", 6, lambda r: f"{100 * (r.peak - r.peak_bound) / r.peak:.1f}" if r.steps else "-"),
    ("1st s", 7, lambda r: _secs(r.first_plan_s)),
    ("proof s", 8, lambda r: _proof(r)),
    ("total s", 8, lambda r: f"{r.total_s:.2f}"),
    ("MiB", 6, lambda r: f"{r.memory_mib:.0f}"),
]


def _proof(r: Row) -> str:
    if r.steps is None:
        return "none"  # no plan under this budget: nothing to prove
    if r.proven_s is not None:
        return f"{r.proven_s:.2f}"
    return f"+{r.steps - r.lower_bound} st"


def _proof_cell(r: Row) -> str:
    if r.steps is not None and r.proven_s is not None:
        return f"{r.proven_s:.1f} s"
    return _proof(r).removesuffix(" st")


def line(cells: list[str]) -> str:
    out = []
    for (_, width, _), cell in zip(COLUMNS, cells, strict=True):
        out.append(cell.ljust(width) if width == COLUMNS[0][1] else cell.rjust(width))
    return " ".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def specs(quick: bool, only: str | None) -> list[Spec]:
    systems = (["real-913"] if REAL.exists() else []) + [f"gen-{p}-{c}" for p, c in SYSTEMS]
    out = [
        Spec(s, u, b)
        for s in systems
        if not quick or s in QUICK
        for u in UPDATES
        for b in BUDGETS
        # `leaf` and the large systems skip `loose`: the one-step upgrade nearly fits there.
        if b != "loose" or (u != "leaf" and s in QUICK)
    ]
    return [s for s in out if only is None or only in s.name]


def readme_table(rows: list[Row], time_limit: float, workers: int) -> str:
    """The README's summary: one line per system and update, its tight and half budgets."""
    lines = [
        f"Generated by `python3 benchmarks/bench_planner.py --readme` on {machine()}, "
        f"{workers} workers, time limit {time_limit:g} s. Budgets 10 % (tight) and 50 % "
        "(half) of the way from the lowest peak any plan reaches to the need of the "
        "one-step upgrade. `steps / lb`: our steps and the proven lower bound; `proof`: "
        "time until no plan with fewer steps is left (`+1`: one step above the bound at the "
        "time limit); `greedy`: greedy with merging; one change per step takes as many "
        "steps as there are components.",
        "",
        "| instance | paths | components | changed paths | tight: steps / lb | first plan "
        "| proof | greedy | half: steps / lb | first plan | proof | greedy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_name = {r.name: r for r in rows}
    for r in rows:
        if not r.name.endswith("/half"):
            continue
        instance = r.name.removesuffix("/half")
        changed = 100 * r.changed_paths / r.paths
        cells = [
            instance,
            f"{r.paths:,}",
            f"{r.components:,}",
            f"{changed:.0f} %" if changed >= 1 else "< 1 %",
        ]
        for budget in (by_name.get(f"{instance}/tight"), r):
            if budget is None:
                cells += ["", "", "", ""]
                continue
            cells += [
                f"{budget.steps or '-'} / {budget.lower_bound}",
                f"{budget.first_plan_s:.1f} s" if budget.first_plan_s is not None else "-",
                _proof_cell(budget),
                f"{budget.merge_steps or '-'}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    planned = [r for r in rows if r.steps]
    proven = sum(r.proven_s is not None for r in planned)
    gap = max((r.steps - r.lower_bound for r in planned), default=0)
    worse = [r.name for r in planned if r.merge_steps is not None and r.steps > r.merge_steps]
    lines += [
        "",
        f"Over all {len(rows)} instances (tight, half and loose budgets): step count proven "
        f"optimal on {proven} of {len(planned)} with a plan, otherwise at most {gap} above "
        f"the lower bound; first plan at most "
        f"{max((r.first_plan_s or 0) for r in rows):.1f} s; more steps than greedy with "
        f"merging: {', '.join(worse) or 'never'}; peak memory of any instance "
        f"{max((r.memory_mib for r in rows), default=0):.0f} MiB.",
    ]
    return "\n".join(lines)


def write_readme(table: str) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    head, sep, rest = text.partition(README_START)
    _, sep2, tail = rest.partition(README_END)
    if not sep or not sep2:
        sys.exit(f"error: {readme}: no {README_START} ... {README_END} section")
    write_atomic(readme, f"{head}{README_START}\n{table}\n{README_END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=30.0, help="per instance (default 30)")
    ap.add_argument("--workers", type=int, default=2, help="CP-SAT workers (default 2)")
    ap.add_argument("--quick", action="store_true", help="only the systems up to 3,000 paths")
    ap.add_argument("--only", metavar="SUBSTRING", help="only instances whose name has it")
    ap.add_argument("--readme", action="store_true", help="write the summary into README.md")
    args = ap.parse_args()
    todo = specs(args.quick, args.only)
    if not todo:
        sys.exit("error: no instance matches")
    print(
        f"{len(todo)} instances on {machine()}; {args.workers} workers, "
        f"time limit {args.time_limit:g} s"
    )
    print(
        "Baselines: 1-step: need of the plain upgrade (* fits); seq: one change per step "
        "in greedy order (steps, - when its peak is over; peak); merge: greedy with merging "
        "(steps, peak; s: time of both). Ours, after |: steps, lb: proven lower bound on "
        "steps, peak, gap%: peak over its proven bound, 1st s: first plan, proof s: no "
        "plan has fewer steps (+N st: gap at the time limit), total s, MiB: peak memory. "
        "Sizes in GiB."
    )
    header = line([h for h, _, _ in COLUMNS])
    print(header)
    print("-" * len(header))
    rows: list[Row] = []
    worse = []
    context = multiprocessing.get_context("spawn")
    for spec in todo:
        # A fresh process per instance: its peak memory is its own.
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
            row = pool.submit(run, spec, args.time_limit, args.workers).result()
        rows.append(row)
        print(line([cell(row) for _, _, cell in COLUMNS]), flush=True)
        if row.merge_steps is not None and (row.steps is None or row.steps > row.merge_steps):
            worse.append(row.name)
    print(
        f"worst: first plan {max((r.first_plan_s or 0) for r in rows):.2f} s, "
        f"total {max(r.total_s for r in rows):.2f} s, memory "
        f"{max(r.memory_mib for r in rows):.0f} MiB; "
        f"more steps than greedy with merging: {', '.join(worse) or 'never'}"
    )
    if args.readme:
        write_readme(readme_table(rows, args.time_limit, args.workers))
        print("README.md: results table updated")


if __name__ == "__main__":
    main()
