"""`budget-solve apply` for real: a throwaway store on a tmpfs as small as the budget.

The current system (a dozen components over shared libraries) fits, the target fits, both
together do not: a plain `nix-store --realise` of the target fails with ENOSPC, and
`apply` reaches the target without any step hitting it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.cli import main
from solver.units import parse_size
from tests.e2e.shell import cache_to_fill, sh, used

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

MiB = 1 << 20

SYSTEM = r"""
{ version }:
let
  mk = name: size: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      echo ${toString deps} > $out
      head -c ${toString size} /dev/urandom >> $out
    '' ];
  };
  v = toString version;
  glibc = mk "glibc-2.39" 2000000 [];
  libs = map (i: mk "lib${toString i}-${if i < 2 then v else "1"}.0" 1000000 [ glibc ]) [ 0 1 2 ];
  pkgs = map (i: mk "pkg${toString i}-${v}.${toString i}" (1500000 + i * 100000)
                    [ glibc (builtins.elemAt libs (i - (i / 3) * 3)) ])
             [ 0 1 2 3 4 5 6 7 8 9 10 11 ];
in mk "nixos-system-box-${v}" 1000 [ (mk "system-path" 1000 pkgs) ]
"""


def test_apply_reaches_target_where_plain_realise_fails(small_store, capsys):
    store, remount = small_store
    # The budget: the old system plus a bit more than half of what the target adds.
    profile, _old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    assert sh("nix-store", "--check-validity", "--print-invalid", new).stdout.strip() == new
    plain = sh(
        "nix-store", "--realise", new, "--option", "substituters", f"file://{cache}", check=False
    )
    assert plain.returncode != 0
    assert "No space left on device" in plain.stderr
    sh("nix-store", "--gc")

    with pytest.raises(SystemExit) as e:
        main([*apply_argv(profile, new, cache, budget), "--time-limit", "20"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done"
    assert os.path.realpath(profile) == new
    assert len(doc["steps"]) >= 2
    tolerance = doc["calibration"]["tolerance_bytes"]
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= budget
        assert step["predicted_peak_bytes"] <= budget
        assert step["measured_peak_bytes"] <= step["predicted_peak_bytes"] + tolerance


def prepare(store, remount, extra=14 * MiB):
    """Old system on the profile, target only in a cache; the tmpfs shrunk to the budget."""
    expr = store.write("system.nix", SYSTEM)
    profile = store.root / "profiles" / "system"
    profile.parent.mkdir(exist_ok=True)
    old = sh("nix-build", str(expr), "--arg", "version", "1", "--no-out-link").stdout.strip()
    new = sh("nix-build", str(expr), "--arg", "version", "2", "--no-out-link").stdout.strip()
    cache = store.root / "cache"
    sh("nix", "copy", "--to", cache_to_fill(cache), new)
    sh("nix-env", "--profile", str(profile), "--set", old)
    # Something of the user's that must survive: a result link pinning one old package.
    keep = store.root / "keep"
    pkg = next(p for p in sh("nix-store", "-qR", old).stdout.split() if p.endswith("pkg3-1.3"))
    sh("nix-store", "--realise", pkg, "--add-root", str(keep))
    sh("nix-store", "--gc")
    budget = used(store.store_dir) + extra
    remount(budget)
    return profile, old, new, cache, budget, keep, pkg


def spawn_apply(argv: list[str]) -> subprocess.Popen[bytes]:
    """`budget-solve ARGV` in a process group of its own, output discarded: a kill of the
    group takes nix's children too, as a power cut would."""
    return subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )


def apply_argv(profile, new, cache, limit):
    return [
        "apply",
        "--yes",
        "--quiet",
        "--json",
        "--profile",
        str(profile),
        "--target",
        new,
        "--limit",
        str(limit),
        "--substituter",
        f"file://{cache}",
        "--time-limit",
        "10",
    ]


def test_failed_step_keeps_last_good_generation(small_store, capsys):
    store, remount = small_store
    profile, _old, new, cache, budget, keep, pkg = prepare(store, remount)
    # The substituter loses one of the new packages: whichever step needs it fails.
    lost = next(
        p
        for p in sh("nix-store", "-qR", "--store", f"file://{cache}", new).stdout.split()
        if p.endswith("pkg7-2.7")
    )
    # Its narinfo stays (planning reads sizes from it); the NAR itself is gone.
    narinfo = (cache / (Path(lost).name.split("-", 1)[0] + ".narinfo")).read_text()
    url = next(line.split(": ", 1)[1] for line in narinfo.splitlines() if line.startswith("URL: "))
    nar = cache / url
    hidden = nar.with_name(nar.name + ".hidden")
    nar.rename(hidden)
    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, budget))
    _, err = capsys.readouterr()
    assert e.value.code == 1
    assert err.startswith("error: step ") and "failed" in err
    current = os.path.realpath(profile)
    assert current != new
    # The last good generation is current and complete; nothing of the user's is lost.
    assert sh("nix-store", "--verify-path", current, check=False).returncode == 0
    assert os.path.realpath(keep) == pkg and Path(pkg).exists()
    # The substituter comes back: a rerun plans from where it stopped and finishes.
    hidden.rename(nar)
    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, budget))
    _out, err = capsys.readouterr()
    assert e.value.code == 0, err
    assert os.path.realpath(profile) == new
    assert Path(pkg).exists()


@pytest.mark.parametrize("kill_at", [(1, "switch"), (1, "collect"), (2, "switch"), (2, None)])
def test_sigkill_then_rerun_reaches_target(small_store, capsys, kill_at, tmp_path):
    import signal
    import time

    store, remount = small_store
    profile, _old, new, cache, budget, keep, pkg = prepare(store, remount)
    journal = Path(os.environ["BUDGET_SOLVE_STATE_DIR"])
    proc = spawn_apply(apply_argv(profile, new, cache, budget))
    step, phase = kill_at
    deadline = time.monotonic() + 60
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        for file in journal.glob("*/journal.json"):
            try:
                data = json.loads(file.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if data.get("step") == step and (phase is None or data.get("phase") == phase):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
        if killed:
            break
        time.sleep(0.002)
    proc.wait()
    if not killed:
        pytest.skip(f"the run finished before step {step} {phase}: nothing to kill")
    # Whatever the moment, a bootable generation is current and the user's root is intact.
    current = os.path.realpath(profile)
    assert sh("nix-store", "--verify-path", current, check=False).returncode == 0
    assert Path(pkg).exists() and os.path.realpath(keep) == pkg
    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, budget))
    _out, err = capsys.readouterr()
    assert e.value.code == 0, err
    assert os.path.realpath(profile) == new
    assert Path(pkg).exists()
    # Only the target's generation is left of the ones the plan made.
    gens = [p for p in profile.parent.iterdir() if p.name.startswith("system-")]
    assert [os.path.realpath(p) for p in gens] == [new]


def hide_nar(cache: Path, store_path: str) -> tuple[Path, Path]:
    """Make a cache lose one NAR but keep its narinfo: sizing works, fetching fails."""
    narinfo = (cache / (Path(store_path).name.split("-", 1)[0] + ".narinfo")).read_text()
    url = next(line.split(": ", 1)[1] for line in narinfo.splitlines() if line.startswith("URL: "))
    nar = cache / url
    hidden = nar.with_name(nar.name + ".hidden")
    nar.rename(hidden)
    return nar, hidden


def test_rollback_to_start_walks_back(small_store, capsys):
    store, remount = small_store
    profile, old, new, cache, budget, _keep, pkg = prepare(store, remount)
    # The starting system must be fetchable again to walk back to it.
    sh("nix", "copy", "--to", cache_to_fill(cache), old)
    plan = [
        n
        for n in sh("nix-store", "-qR", "--store", f"file://{cache}", new).stdout.split()
        if n.endswith("-2.11")
    ]
    hide_nar(cache, plan[0])
    with pytest.raises(SystemExit) as e:
        main([*apply_argv(profile, new, cache, budget), "--rollback-to-start"])
    _, err = capsys.readouterr()
    assert e.value.code == 1
    assert "rolled back to the starting system" in err
    assert os.path.realpath(profile) == old
    assert sh("nix-store", "--verify-path", old, check=False).returncode == 0
    assert Path(pkg).exists()


def test_one_step_when_it_fits_and_limit_auto(small_store, capsys):
    store, remount = small_store
    profile, _old, new, cache, _budget, _keep, _pkg = prepare(store, remount, extra=64 * MiB)
    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, "auto"))
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert len(doc["steps"]) == 1 and doc["steps"][0]["path"] == new
    assert os.path.realpath(profile) == new
    st = os.statvfs(store.store_dir)
    assert doc["budget_bytes"] < st.f_blocks * st.f_frsize


def test_apply_runs_the_reviewed_plan_or_refuses_what_changed(small_store, capsys, tmp_path):
    """`plan --json > FILE`, then `apply --plan FILE`: the run carries out the steps that
    were read, and refuses, with one line and exit 2, a plan for another --limit or
    another target, before anything is collected."""
    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount, extra=40 * MiB)
    plan_argv = ["plan", "--current", old, "--target", new, "--substituter", f"file://{cache}"]
    with pytest.raises(SystemExit) as e:
        main([*plan_argv, "--limit", str(budget), "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    reviewed = json.loads(out)
    assert reviewed["current_roots"] == [old] and reviewed["target_roots"] == [new]
    assert reviewed["limit_bytes"] == budget
    file = tmp_path / "plan.json"
    file.write_text(out)
    argv = apply_argv(profile, new, cache, budget)
    limit_at = argv.index("--limit")
    without_limit = argv[:limit_at] + argv[limit_at + 2 :]

    with pytest.raises(SystemExit) as e:
        main(
            [
                *argv[:limit_at],
                "--limit",
                str(budget - 1),
                *argv[limit_at + 2 :],
                "--plan",
                str(file),
            ]
        )
    _, err = capsys.readouterr()
    assert e.value.code == 2
    assert err.startswith(f"error: --plan {file} is for --limit ") and len(err.splitlines()) == 1

    other = dict(reviewed, target_roots=[old])
    elsewhere = tmp_path / "other.json"
    elsewhere.write_text(json.dumps(other))
    with pytest.raises(SystemExit) as e:
        main([*without_limit, "--plan", str(elsewhere)])
    _, err = capsys.readouterr()
    assert e.value.code == 2 and "is for another target" in err, err
    assert os.path.realpath(profile) == old

    with pytest.raises(SystemExit) as e:
        main([*without_limit, "--plan", str(file)])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done" and os.path.realpath(profile) == new
    ran = [{k: s[k] for k in ("upgrade", "add", "remove")} for s in doc["steps"]]
    assert ran == [{k: s[k] for k in ("upgrade", "add", "remove")} for s in reviewed["steps"]]


def test_a_dry_run_document_is_a_plan_to_apply(small_store, capsys, tmp_path):
    """`apply --dry-run --json > FILE` plans in apply's own terms (the calibrated disk),
    so that its document, fed back with --plan, runs those very steps even at a budget
    where `plan` (the store alone) would plan differently."""
    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    argv = apply_argv(profile, new, cache, budget)
    with pytest.raises(SystemExit) as e:
        main([*argv, "--dry-run"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    planned = json.loads(out)
    assert planned["status"] == "planned" and len(planned["steps"]) >= 2
    assert planned["current_roots"] == [old] and planned["target_roots"] == [new]
    assert planned["limit_bytes"] == budget
    file = tmp_path / "plan.json"
    file.write_text(out)
    limit_at = argv.index("--limit")
    with pytest.raises(SystemExit) as e:
        main([*argv[:limit_at], *argv[limit_at + 2 :], "--plan", str(file)])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done" and os.path.realpath(profile) == new
    kinds = ("upgrade", "add", "remove")
    assert [{k: s[k] for k in kinds} for s in doc["steps"]] == [
        {k: s[k] for k in kinds} for s in planned["steps"]
    ]


def test_no_plan_names_a_limit_that_then_works(small_store, capsys):
    """`--limit` counts the filesystem; a "no plan fits" names, in those terms, a --limit
    under which the run then reaches the target; a --limit above the disk is refused."""
    store, remount = small_store
    profile, _old, new, cache, _budget, _keep, _pkg = prepare(store, remount, extra=40 * MiB)
    st = os.statvfs(store.store_dir)
    disk = st.f_blocks * st.f_frsize
    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, disk + MiB))
    _out, err = capsys.readouterr()
    assert e.value.code == 2 and "is more than the filesystem" in err
    assert len(err.strip().splitlines()) == 1

    too_small = used(store.store_dir) + 2 * MiB
    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, too_small))
    out, err = capsys.readouterr()
    assert e.value.code == 3, err
    doc = json.loads(out)
    said = doc["error"]
    assert said.startswith("no plan fits --limit ") and "the store may use" in said
    printed = parse_size(said.rpartition("a --limit of ")[2].removesuffix(" would"))
    assert doc["limit_bytes"] == too_small
    assert too_small < doc["min_feasible_limit_bytes"] <= printed <= disk
    assert os.path.realpath(profile) != new

    with pytest.raises(SystemExit) as e:
        main(apply_argv(profile, new, cache, printed))
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done" and os.path.realpath(profile) == new
    assert all(step["measured_peak_bytes"] <= printed for step in doc["steps"])
