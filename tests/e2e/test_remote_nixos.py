"""`budget-solve apply --nixos --target-host` for real, on the stand-in nixpkgs.

The host (tests/e2e/remote.py) runs the old system, booted, and has a store of its own on
a budget-sized tmpfs; the new packages are in a file:// cache it reads. Every step is
evaluated here, and the host gets only the derivations: it fetches the packages, builds
the glue and switches (its `switch-to-configuration` logs the calls). With --build-host
another host builds the systems, and the target, which may build nothing, gets them.
"""

import json
import os
from pathlib import Path

import pytest

from adapters.cli import main
from tests.e2e.shell import STANDIN, cache_to_fill, sh
from tests.e2e.test_remote import _host_used

pytestmark = pytest.mark.nix

MiB = 1 << 20
CONFIG = STANDIN / "configuration.nix"


def _system(nixpkgs: Path) -> list[str]:
    """nix-build of the stand-in configuration's system with `nixpkgs`."""
    argv = ["nix-build", "<nixpkgs/nixos>", "-A", "system", "--no-out-link"]
    return [*argv, "-I", f"nixpkgs={nixpkgs}", "-I", f"nixos-config={CONFIG}"]


def _machine(host, nix_store, tmp_path: Path, monkeypatch) -> dict:
    """The host running the old system; the new one's packages in a cache, and nothing of
    it here; the host's disk a bit more than it uses now."""
    conf = nix_store.root / "etc" / "nix.conf"
    conf.write_text(conf.read_text() + "require-sigs = false\n")
    old = host.run(*_system(STANDIN / "old")).strip()
    profile = host.state_dir / "profiles" / "system"
    host.run("mkdir", "-p", str(profile.parent))
    host.run("nix-env", "--profile", str(profile), "--set", old)
    run = tmp_path / "run"
    run.mkdir()
    host.run("ln", "-s", old, str(run / "booted-system"))
    host.run("ln", "-s", str(run / "booted-system"), str(host.state_dir / "gcroots" / "booted"))
    monkeypatch.setenv("BUDGET_SOLVE_RUN_DIR", str(run))
    log = tmp_path / "switch.log"
    host.setenv("STANDIN_SWITCH_LOG", str(log))
    new = sh(*_system(STANDIN / "new")).stdout.strip()
    cache = tmp_path / "cache"
    packages = [p for p in sh("nix-store", "-qR", new).stdout.split() if p != new]
    copy = ["nix", "--extra-experimental-features", "nix-command", "copy"]
    sh(*copy, "--to", cache_to_fill(cache), *packages)
    sh("nix-store", "--gc")
    assert not os.path.exists(new)
    host.run("nix-store", "--gc")
    budget = _host_used(host) + 6 * MiB
    host.remount(budget)
    return {
        "old": old,
        "new": new,
        "profile": profile,
        "cache": cache,
        "log": log,
        "budget": budget,
    }


def _apply(capsys, host, m: dict, *extra: str, scheme: str = "") -> dict:
    argv = [
        "apply",
        "--yes",
        "--nixos",
        "--json",
        "--quiet",
        "--target-host",
        scheme + host.address,
    ]
    argv += ["--old-nixpkgs", str(STANDIN / "old"), "--limit", str(m["budget"])]
    argv += ["--substituter", f"file://{m['cache']}", "--time-limit", "10"]
    argv += ["-I", f"nixos-config={CONFIG}", "-I", f"nixpkgs={STANDIN / 'new'}"]
    argv += ["--booted-system", "drop", *extra]
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    assert e.value.code in (0, None), err
    doc: dict = json.loads(out)
    return doc


def _upgraded(host, m: dict, doc: dict) -> None:
    """The host runs the new system, switched to step by step within its disk."""
    assert doc["status"] == "done"
    assert len(doc["steps"]) >= 2
    assert host.run("readlink", "-f", str(m["profile"])).strip() == m["new"]
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= m["budget"]
    calls = [line.split() for line in m["log"].read_text().splitlines()]
    assert [action for _, action in calls] == ["switch"] * len(doc["steps"])
    assert calls[-1][0] == m["new"]
    # Only the booted-system root went, as the user said; the old system with it.
    assert "booted" not in host.run("ls", str(host.state_dir / "gcroots")).split()
    assert host.run("nix-store", "--check-validity", "--print-invalid", m["old"]).strip()
    host.run("nix-store", "--verify", "--check-contents")


@pytest.mark.every_nix
@pytest.mark.parametrize("scheme", ["", "ssh-ng://"])
def test_nixos_upgrade_of_a_host_evaluated_here(
    remote_host, nix_store, tmp_path, monkeypatch, capsys, scheme
):
    m = _machine(remote_host, nix_store, tmp_path, monkeypatch)
    # The host's nix-daemon logs its calls: ssh-ng:// copies go through it, ssh:// ones not.
    calls = tmp_path / "daemon.log"
    daemon = remote_host.bin / "nix-daemon"
    real = remote_host.nix.program("nix-daemon")
    daemon.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    daemon.chmod(0o755)
    _upgraded(remote_host, m, _apply(capsys, remote_host, m, scheme=scheme))
    assert (calls.exists() and "--stdio" in calls.read_text()) == bool(scheme)


@pytest.mark.every_nix
def test_a_build_host_builds_what_the_target_cannot(
    two_remote_hosts, nix_store, tmp_path, monkeypatch, capsys
):
    target, builder = two_remote_hosts
    m = _machine(target, nix_store, tmp_path, monkeypatch)
    # The target may build nothing: every system must come from the build host.
    target.setenv("NIX_CONFIG", "max-jobs = 0")
    doc = _apply(capsys, target, m, "--build-host", builder.address)
    _upgraded(target, m, doc)
    # The build host built them; its temporary GC roots are gone.
    assert builder.run("nix-store", "--check-validity", m["new"]) == ""
    assert "budget-solve-build" not in builder.run("sh", "-c", "ls ${TMPDIR:-/tmp}")


def test_plain_first_on_a_roomy_host_is_one_switch(
    remote_host, nix_store, tmp_path, monkeypatch, capsys
):
    m = _machine(remote_host, nix_store, tmp_path, monkeypatch)
    m["budget"] += 40 * MiB
    remote_host.remount(m["budget"])
    doc = _apply(capsys, remote_host, m, "--plain-first")
    assert doc["status"] == "done" and doc["plain_upgrade"] == "done"
    assert remote_host.run("readlink", "-f", str(m["profile"])).strip() == m["new"]
    assert m["log"].read_text().split() == [m["new"], "switch"]
