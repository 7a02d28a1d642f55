"""Planner benchmark: solve time, steps, lower bound and the greedy baseline per instance.

    python3 benchmarks/bench_planner.py [--time-limit 30] [--workers 2] [--quick]

Instances: the real 913-path NixOS closure from ../shared/data/real (when present) with a
simulated upgrade, and generated closures from 1,000 to 25,000 paths. Budget: halfway
between max(|old|, |new|) and the one-step need (both together). Fixed seeds: every
run measures the same work. Figures are printed, not asserted; targets are in the README.
"""

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solver.closure import Closure
from solver.components import split_components
from solver.greedy import greedy_sequence, merge_greedy
from solver.instance import Problem, build_instance
from solver.plan import evaluate, one_step
from solver.planner import plan_upgrade
from solver.synthetic import generate_pair, generate_upgrade
from solver.validate import validate

REAL = (
    Path(__file__).resolve().parents[2]
    / "shared/data/real/lf-blog_nixcon2022_nixos-system-micro_closure-graph.json"
)

GENERATED = [(1_000, 60), (3_000, 150), (10_000, 300), (25_000, 500)]


def instances(quick: bool) -> list[tuple[str, Closure, Closure]]:
    out = []
    if REAL.exists():
        from adapters.readers import read_source

        old = read_source(str(REAL))
        new = generate_upgrade(old, changed=0.3, seed=1)
        out.append((f"real-nixos-{len(old)}", old, new))
    for paths, comps in GENERATED[:2] if quick else GENERATED:
        pair = generate_pair(paths, comps, changed=0.3, seed=paths)
        out.append((f"gen-{paths}-{comps}", pair.old, pair.new))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="only the small instances")
    args = ap.parse_args()
    random.seed(0)
    header = (
        f"{'instance':<22}{'paths':>7}{'comps':>7}{'groups':>7}{'steps':>6}{'lb':>4}"
        f"{'greedy':>7}{'status':>10}{'model s':>8}{'1st plan s':>11}{'total s':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, old, new in instances(args.quick):
        t0 = time.perf_counter()
        split = split_components(old, new)
        problem = Problem(old, new, split)
        inst = build_instance(problem)
        t1 = time.perf_counter()
        both = one_step(inst).peak_bytes
        budget = (max(old.size(), new.size()) + both) // 2
        result = plan_upgrade(inst, budget, time_limit=args.time_limit, workers=args.workers)
        t2 = time.perf_counter()
        greedy = evaluate(inst, merge_greedy(inst, greedy_sequence(inst), budget))
        greedy_steps = str(len(greedy)) if greedy.peak_bytes <= budget else "-"
        steps = len(result.plan) if result.plan else 0
        # Up to the first complete plan: bounds, min-peak order, merged heuristics.
        first_plan = sum(result.timings.get(k, 0.0) for k in ("bounds", "min_peak", "heuristics"))
        if result.plan:
            assert validate(problem, result.plan, budget).peak == result.peak_bytes
        print(
            f"{name:<22}{len(old):>7}{len(split.changed):>7}{len(inst.groups):>7}{steps:>6}"
            f"{result.lower_bound_steps:>4}{greedy_steps:>7}{result.status.value:>10}"
            f"{t1 - t0:>8.2f}{first_plan:>11.2f}{t2 - t0:>9.2f}",
            flush=True,
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak memory: {peak_mib:.0f} MiB; {args.workers} workers, time limit {args.time_limit:g}s"
    )


if __name__ == "__main__":
    main()
