"""A power cut at any moment of `apply`: SIGKILL of the whole process group after a random
delay, again and again, on real Nix with a budget-sized tmpfs. After every kill a verified
generation is current, the user's root and other generation are intact, and a rerun
reaches the target with a store that verifies.

BUDGET_SOLVE_KILL_TRIALS sets the number of trials (20 by default, as CI runs it) on the
Nix of the tests (tests/e2e/versions.py); the other Nix versions of the matrix get a
quarter of them.
"""

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from adapters.cli import main
from tests.e2e import versions
from tests.e2e.shell import sh
from tests.e2e.test_apply import apply_argv, prepare, spawn_apply

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

TRIALS = int(os.environ.get("BUDGET_SOLVE_KILL_TRIALS", "20"))


def _generation(profile: Path, number: int) -> str | None:
    link = profile.parent / f"{profile.name}-{number}-link"
    return os.path.realpath(link) if os.path.islink(link) else None


def test_random_kills_then_rerun(small_store, capsys):
    store, remount = small_store
    trials = TRIALS if store.nix.name == versions.selection().primary else max(1, TRIALS // 4)
    profile, old, new, cache, budget, keep, pkg = prepare(store, remount)
    expr = store.root / "system.nix"
    # Generation 2 is the user's other system; the run starts from generation 3 (old).
    other = sh("nix-store", "--add", str(store.write("other-system", "u" * 1000))).stdout.strip()
    sh("nix-env", "--profile", str(profile), "--set", other)
    sh("nix-env", "--profile", str(profile), "--set", old)
    sh("nix-env", "--profile", str(profile), "--delete-generations", "1")
    mine = profile.parent / f"{profile.name}-2-link"
    assert os.path.realpath(mine) == other

    def reset() -> None:
        """Back to the old system on generation 2+, with room to rebuild it first."""
        remount(budget * 3)
        rebuilt = sh("nix-build", str(expr), "--arg", "version", "1", "--no-out-link")
        assert rebuilt.stdout.strip() == old
        sh("nix-env", "--profile", str(profile), "--set", old)
        for link in profile.parent.glob(f"{profile.name}-*-link"):
            if link != mine and os.path.realpath(link) != old:
                link.unlink()
        sh("nix-store", "--gc")
        remount(budget)

    def run_once(delay: float) -> bool:
        """One run, killed with its children after `delay` seconds; whether it was."""
        proc = spawn_apply(apply_argv(profile, new, cache, budget))
        try:
            proc.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True

    # An uninterrupted run, timed: the kills sample its whole span.
    started = time.monotonic()
    assert not run_once(120.0)
    span = time.monotonic() - started
    assert os.path.realpath(profile) == new
    rng = random.Random(20261123)
    kills = 0
    for trial in range(trials):
        reset()
        delay = rng.uniform(0.05, span)
        kills += run_once(delay)
        where = f"trial {trial}, killed after {delay:.2f} s of {span:.2f} s"
        current = os.path.realpath(profile)
        assert sh("nix-store", "--verify-path", current, check=False).returncode == 0, where
        assert Path(pkg).exists() and os.path.realpath(keep) == pkg, where
        assert _generation(profile, 2) == other and Path(other).exists(), where
        with pytest.raises(SystemExit) as e:
            main(apply_argv(profile, new, cache, budget))
        _out, err = capsys.readouterr()
        assert e.value.code == 0, f"{where}: {err}"
        assert os.path.realpath(profile) == new, where
        assert _generation(profile, 2) == other, where
        assert sh("nix-store", "--verify", "--check-contents", check=False).returncode == 0, where
    print(f"{kills} of {trials} runs killed, span {span:.2f} s")
    # Most delays land inside the run: the loop is about kills, not finished runs.
    assert kills >= trials // 2, f"only {kills} of {trials} runs were killed (span {span:.2f} s)"
