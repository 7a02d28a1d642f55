"""Fleet benchmark: 1,000 hosts drawn from 20 distinct closures, one update.

    python3 benchmarks/bench_fleet.py [--hosts 1000] [--closures 20] [--workers 2] [--dask]

Prints the wall time on local processes (and, with --dask, on a dask.distributed
LocalCluster with as many workers) and whether both give the same report. Fixed seeds.
"""

import argparse
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.studies import fleet as fl
from solver.synthetic import generate_system
from solver.units import format_size
from solver.whatif.scenario import Bump, Growth

GiB = 1 << 30


def make_fleet(hosts: int, closures: int, seed: int = 7) -> fl.Fleet:
    rng = random.Random(seed)
    systems = {}
    labels = {}
    for i in range(closures):
        paths = rng.randrange(800, 2500)
        system = generate_system(paths, max(20, paths // 25), seed=1000 + i)
        key = fl.fingerprint(system)
        systems[key] = system
        labels[key] = f"system-{i:02d} ({paths} paths)"
    keys = sorted(systems)
    disks = [int(s * GiB) for s in (3, 4, 5, 6, 8, 10)]
    members = [fl.Host(f"vps-{n:04d}", rng.choice(disks), rng.choice(keys)) for n in range(hosts)]
    changes = [Bump(("openssl", "sqlite"), Growth(1.03)), Bump(("curl",), version="8.11.0")]
    return fl.Fleet("benchmark fleet", members, systems, labels, changes, overhead=GiB // 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--closures", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask", action="store_true", help="also run on a Dask LocalCluster")
    args = ap.parse_args()

    t = time.monotonic()
    spec = make_fleet(args.hosts, args.closures)
    made = time.monotonic() - t
    print(
        f"fleet: {len(spec.hosts)} hosts, {len(spec.closures)} distinct closures "
        f"(generated in {made:.1f} s)"
    )
    t = time.monotonic()
    local = fl.run(spec, workers=args.workers)
    local_s = time.monotonic() - t
    doc = local.to_json()
    tot = doc["totals"]
    print(f"local processes ({args.workers}): {local_s:.1f} s")
    print(
        f"  one step {tot['one_step']}, several steps {tot['multi_step']}, cannot {tot['cannot']}"
    )
    for k, size in doc["disk_for_steps_bytes"].items():
        print(f"  disk for at most {k} step(s): {format_size(size)}")
    if args.dask:
        from dask.distributed import LocalCluster

        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, dashboard_address=None
        ) as cluster:
            t = time.monotonic()
            remote = fl.run(spec, scheduler=cluster.scheduler_address)
            dask_s = time.monotonic() - t
        same = remote.to_json() == doc
        print(
            f"dask LocalCluster ({args.workers} workers): {dask_s:.1f} s, "
            f"same report as local: {same}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
