"""Closure-reading benchmark: a 25,000-path system from path-info JSON and from db.sqlite.

    python3 benchmarks/bench_read.py [--paths 25000] [--repeat 5]

Writes one generated system (fixed seed) as `nix path-info --json --recursive` prints it in
each Nix version's shape (a list before 2.19, an object from 2.19, `--json-format 2`), and
registers it in a throwaway Nix store database with the real `nix-store --load-db`, so the
schema is Nix's own. Then times our readers on each: best and median of --repeat runs,
from the file to a checked Closure. Targets (README): JSON under 2 s, db.sqlite under 1 s.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.nixstore.formats.pathinfo import dump_path_info_json  # noqa: E402
from adapters.nixstore.sources import read_db, read_file  # noqa: E402
from solver.closure import Closure  # noqa: E402
from solver.synthetic import generate_system  # noqa: E402


def registration(closure: Closure) -> str:
    """The input of `nix-store --load-db`: path, NAR hash, NAR size, deriver, references."""
    out = []
    for info in closure.infos():
        out += [info.path, "sha256:" + "0" * 52, str(info.nar_size), info.deriver or ""]
        out.append(str(len(info.references)))
        out += info.references
    return "\n".join(out) + "\n"


def load_db(closure: Closure, state: Path) -> Path | None:
    """db.sqlite of a throwaway store holding `closure`, written by Nix itself."""
    nix_store = shutil.which("nix-store")
    if nix_store is None:
        return None
    env = {**os.environ, "NIX_STATE_DIR": str(state), "NIX_LOG_DIR": str(state / "log")}
    subprocess.run(
        [nix_store, "--load-db"],
        input=registration(closure),
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    return state / "db" / "db.sqlite"


def timed(fn: Callable[[], Closure], repeat: int, expected: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        closure = fn()
        times.append(time.perf_counter() - t)
        assert len(closure) == expected, (len(closure), expected)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=25_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    closure = generate_system(args.paths, max(50, args.paths // 50), seed=1)
    root = closure.roots[0]
    print(f"{len(closure)} paths, {sum(len(i.references) for i in closure.infos())} references")
    print(f"{'source':<34}{'MiB':>7}{'best s':>9}{'median s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ("list", "2.19", "v2"):
            file = Path(tmp) / f"path-info-{shape}.json"
            file.write_text(dump_path_info_json(closure, shape), encoding="utf-8")
            best, median = timed(lambda f=file: read_file(f), args.repeat, len(closure))
            label = f"path-info JSON ({shape})"
            print(f"{label:<34}{file.stat().st_size / 2**20:>7.1f}{best:>9.3f}{median:>10.3f}")
        db = load_db(closure, Path(tmp) / "state")
        if db is None:
            print("db.sqlite: skipped, nix-store not found")
        else:
            best, median = timed(lambda: read_db(db, [root]), args.repeat, len(closure))
            label = "db.sqlite (nix-store --load-db)"
            print(f"{label:<34}{db.stat().st_size / 2**20:>7.1f}{best:>9.3f}{median:>10.3f}")


if __name__ == "__main__":
    main()
