"""`budget-solve apply --nixos` for real, on the stand-in nixpkgs (tests/data/standin).

The running system (four packages over the old glibc) is the `system` profile's generation
and /run/booted-system; the new packages are in a file:// cache, the new glue is not (it is
built locally, as on a real machine). The store is a tmpfs that holds one system and a bit
more than half of the other. Each step's top-level has a `bin/switch-to-configuration` that
logs its calls, so the tests see what was activated, and how.
"""

import json
import os
from pathlib import Path

import pytest

from adapters.cli import main
from tests.e2e.shell import cache_to_fill, sh, standin_flake, used

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

MiB = 1 << 20
STANDIN = Path(__file__).resolve().parents[1] / "data" / "standin"
CONFIG = STANDIN / "configuration.nix"


def build_system(nixpkgs: Path) -> str:
    argv = ["nix-build", "<nixpkgs/nixos>", "-A", "system", "--no-out-link"]
    argv += ["-I", f"nixpkgs={nixpkgs}", "-I", f"nixos-config={CONFIG}"]
    return sh(*argv).stdout.strip()


@pytest.fixture
def machine(small_store, tmp_path, monkeypatch):
    """The old system running and booted; the new packages in a cache; the budget set."""
    store, remount = small_store
    old = build_system(STANDIN / "old")
    new = build_system(STANDIN / "new")
    cache = tmp_path / "cache"
    packages = [p for p in sh("nix-store", "-qR", new).stdout.split() if p != new]
    sh("nix", "copy", "--to", cache_to_fill(cache), *packages)
    profile = store.state_dir / "profiles" / "system"
    profile.parent.mkdir(parents=True, exist_ok=True)
    sh("nix-env", "--profile", str(profile), "--set", old)
    # What NixOS's stage 2 does at boot: /run/booted-system, and a GC root pointing at it.
    run = tmp_path / "run"
    run.mkdir()
    (run / "booted-system").symlink_to(old)
    (store.state_dir / "gcroots" / "booted-system").symlink_to(run / "booted-system")
    monkeypatch.setenv("BUDGET_SOLVE_RUN_DIR", str(run))
    log = tmp_path / "switch.log"
    monkeypatch.setenv("STANDIN_SWITCH_LOG", str(log))
    monkeypatch.setenv("STANDIN_SWITCH_SW_LOG", str(tmp_path / "switch-sw.log"))
    sh("nix-store", "--gc")
    budget = used(store.store_dir) + 6 * MiB
    remount(budget)
    return {
        "profile": profile,
        "old": old,
        "new": new,
        "cache": cache,
        "run": run,
        "log": log,
        "budget": budget,
        "store": store,
        "remount": remount,
    }


def apply(m, *extra: str) -> tuple[int, str, str]:
    argv = [
        "apply",
        "--yes",
        "--nixos",
        "--quiet",
        "--json",
        "--old-nixpkgs",
        str(STANDIN / "old"),
        "--limit",
        str(m["budget"]),
        "--substituter",
        f"file://{m['cache']}",
        "--time-limit",
        "10",
        *extra,
    ]
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = m["capsys"].readouterr()
    return int(e.value.code or 0), out, err


def switches(log: Path) -> list[tuple[str, str]]:
    if not log.exists():
        return []
    return [tuple(line.split()) for line in log.read_text().splitlines()]  # type: ignore[misc]


def classic(m) -> list[str]:
    return ["-I", f"nixos-config={CONFIG}", "-I", f"nixpkgs={STANDIN / 'new'}"]


def test_classic_upgrade_with_booted_root_dropped(machine, capsys):
    m = machine | {"capsys": capsys}
    code, out, err = apply(m, *classic(m), "--booted-system", "drop")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done"
    assert os.path.realpath(m["profile"]) == m["new"]
    assert len(doc["steps"]) >= 2
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= m["budget"]
        tolerance = doc["calibration"]["tolerance_bytes"]
        assert step["measured_peak_bytes"] <= step["predicted_peak_bytes"] + tolerance
    # Every step was activated with `switch`; the last one is the target.
    calls = switches(m["log"])
    assert [c[1] for c in calls] == ["switch"] * len(doc["steps"])
    assert calls[-1][0] == m["new"]
    # Each step upgraded some packages; the first generation was neither end.
    assert all(step["upgrade"] for step in doc["steps"])
    assert calls[0][0] not in (m["old"], m["new"])
    # Only the booted-system root was dropped, and only because the user said so.
    assert not (m["store"].state_dir / "gcroots" / "booted-system").is_symlink()
    assert (m["run"] / "booted-system").is_symlink()
    assert not Path(m["old"]).exists()


def test_flake_upgrade_stops_for_a_reboot_after_each_step(machine, capsys, tmp_path):
    m = machine | {"capsys": capsys}
    flake = standin_flake(tmp_path / "flake")
    argv = ["--flake", f"{flake}#box", "--booted-system", "reboot"]
    reboots = 0
    while True:
        code, out, err = apply(m, *argv)
        doc = json.loads(out)
        if code == 0:
            break
        assert code == 4, err
        assert doc["status"] == "reboot"
        current = os.path.realpath(m["profile"])
        assert switches(m["log"])[-1] == (current, "boot")
        # Not rebooted yet: the rerun waits, and changes nothing.
        code, out, _ = apply(m, *argv)
        assert code == 4 and json.loads(out)["status"] == "reboot"
        assert os.path.realpath(m["profile"]) == current
        # The reboot: the machine runs the new generation.
        booted = m["run"] / "booted-system"
        booted.unlink()
        booted.symlink_to(current)
        reboots += 1
        assert reboots < 5
    assert doc["status"] == "done"
    assert reboots == len(doc["steps"]) - 1 >= 1
    assert os.path.realpath(m["profile"]) == m["new"]
    assert {c[1] for c in switches(m["log"])} == {"boot"}
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= m["budget"]
    # The booted-system root was never touched.
    assert (m["store"].state_dir / "gcroots" / "booted-system").is_symlink()


def test_pinned_booted_system_needs_a_reboot_or_drop(machine, capsys):
    m = machine | {"capsys": capsys}
    code, _out, err = apply(m, *classic(m))
    assert code == 3, err
    assert err.startswith("error: no plan fits")
    assert "--booted-system reboot or drop" in err
    assert os.path.realpath(m["profile"]) == m["old"]
    assert switches(m["log"]) == []


def test_plain_first_falls_back_to_steps_when_the_disk_fills(machine, capsys):
    """--plain-first on a disk where the plain build runs out of space: what it left is
    collected and the staged plan reaches the target."""
    m = machine | {"capsys": capsys}
    code, out, err = apply(m, *classic(m), "--booted-system", "drop", "--plain-first")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done" and doc["plain_upgrade"] == "out of space"
    assert os.path.realpath(m["profile"]) == m["new"]
    assert len(doc["steps"]) >= 2
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= m["budget"]


def test_plain_first_does_it_in_one_step_when_it_fits(machine, capsys):
    m = machine | {"capsys": capsys}
    roomy = m["budget"] + 40 * MiB
    m["remount"](roomy)
    plain = ("--booted-system", "drop", "--plain-first", "--limit", str(roomy))
    code, out, err = apply(m, *classic(m), *plain)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["plain_upgrade"] == "done" and len(doc["steps"]) == 1
    assert os.path.realpath(m["profile"]) == m["new"]
    # The new system was activated once, with `switch`.
    assert switches(m["log"]) == [(m["new"], "switch")]


def test_rollback_to_start_rebuilds_the_old_system(machine, capsys, monkeypatch):
    """Step 2's activation fails; with --rollback-to-start the run walks back, building
    again what collection removed (old packages from the old nixpkgs: the start is in no
    cache), until a system of the starting packages is current and activated."""
    m = machine | {"capsys": capsys}
    monkeypatch.setenv("STANDIN_SWITCH_FAIL_AT", "2")
    code, _out, err = apply(m, *classic(m), "--booted-system", "drop", "--rollback-to-start")
    assert code == 1, err
    assert "step 2 of" in err and "rolled back to the starting system" in err
    current = os.path.realpath(m["profile"])
    names = {Path(p).name.split("-", 1)[1] for p in sh("nix-store", "-qR", current).stdout.split()}
    assert {"hello-1.0", "world-1.0", "tools-1.0", "editor-1.0"} <= names
    assert not names & {"hello-2.0", "world-2.0", "tools-2.0", "editor-2.0"}
    # Activated: step 1, step 2 (which failed), step 1 again, then the rebuilt start.
    calls = switches(m["log"])
    assert len(calls) == 4 and calls[2] == calls[0] and calls[-1] == (current, "switch")


MODULE = Path(__file__).resolve().parents[2] / "adapters" / "apply" / "nixos-module.nix"


@pytest.mark.parametrize("tagged_by", ["module", "command line"])
def test_holding_back_a_package_is_what_makes_it_fit(machine, capsys, tmp_path, tagged_by):
    """A disk where no plan that keeps every package fits: each step would hold the new
    glibc and a new package beside the whole old system. Holding `editor` back (tagged in
    the configuration through nixos-module.nix, or with --non-vital) frees its room; it
    leaves in the first step and comes back, new, in the last."""
    m = machine | {"capsys": capsys}
    m["budget"] = used(m["store"].store_dir) + 5 * MiB // 2
    m["remount"](m["budget"])
    tags = 'budgetSolve.nonVital = [ "editor" ];' if tagged_by == "module" else ""
    config = tmp_path / "configuration.nix"
    config.write_text(
        f"{{ pkgs, ... }}: {{ imports = [ {MODULE} ];\n"
        "  environment.systemPackages = [ pkgs.hello pkgs.world pkgs.tools pkgs.editor ];\n"
        f"  {tags} }}\n"
    )
    argv = ["-I", f"nixos-config={config}", "-I", f"nixpkgs={STANDIN / 'new'}"]
    argv += ["--booted-system", "drop"]
    extra = ["--non-vital", "editor"] if tagged_by == "command line" else []
    # Without holding anything back, no plan fits.
    code, _out, err = apply(m, *classic(m), "--booted-system", "drop", "--dry-run")
    assert code == 3, err
    code, out, err = apply(m, *argv, *extra)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done"
    assert os.path.realpath(m["profile"]) == m["new"]
    steps = doc["steps"]
    assert steps[0]["drop"] == ["editor"] and steps[-1]["restore"] == ["editor"]
    for step in steps:
        assert step["measured_peak_bytes"] <= m["budget"]
    # The middle generations ran without the package: a placeholder stood in for it. The
    # last has the new one.
    activated = (tmp_path / "switch-sw.log").read_text().splitlines()
    assert len(activated) == len(steps)
    for linked in activated[:-1]:
        assert "-editor-held-back" in linked and "-editor-" not in linked.replace(
            "-editor-held-back", ""
        ), linked
    assert "-editor-2.0" in activated[-1] and "-held-back" not in activated[-1]


def test_a_build_host_builds_the_systems_this_machine_cannot(
    machine, capsys, remote_host, monkeypatch
):
    """--build-host without --target-host: the systems are built on the other host and
    copied here, where nothing may be built."""
    m = machine | {"capsys": capsys}
    monkeypatch.setenv("NIX_CONFIG", "max-jobs = 0")
    build = ("--booted-system", "drop", "--build-host", remote_host.address)
    code, out, err = apply(m, *classic(m), *build)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done" and len(doc["steps"]) >= 2
    assert os.path.realpath(m["profile"]) == m["new"]
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= m["budget"]
    assert remote_host.run("nix-store", "--check-validity", m["new"]) == ""
