"""This machine on one Nix, the host on another: Nix 2.26 here and 2.34 there, and the
reverse. `nix copy` speaks to the host's own Nix (`nix-store --serve` for ssh://,
`nix-daemon --stdio` for ssh-ng://), each side's flags follow its own version (the
tool asks each host for it), and each side's store reads the other's paths.
They run with the matrix (BUDGET_SOLVE_NIX unset), where both versions are set up."""

import json

import pytest

from tests.e2e import versions
from tests.e2e.test_remote import _host_used, _host_with_old_system, apply_remote
from tests.e2e.test_remote_nixos import _apply, _machine, _upgraded

MiB = 1 << 20
PAIRS = [("2.26", "2.34"), ("2.34", "2.26")]

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(
        versions.chosen() is not None,
        reason="a pair of Nix versions: runs with the matrix (BUDGET_SOLVE_NIX unset)",
    ),
    pytest.mark.parametrize(
        ("nix_version", "host_nix"),
        PAIRS,
        indirect=True,
        ids=[f"here-{here}-host-{there}" for here, there in PAIRS],
    ),
]


def _versions_seen(nix_store, host) -> None:
    """Each side runs the Nix it was given."""
    here = nix_store.run("nix", "--version").split()[-1]
    there = host.run("nix", "--version").split()[-1]
    assert (here, there) == (nix_store.nix.release, host.nix.release)
    assert here != there


def test_plan_and_apply_over_ssh(remote_host, nix_store, capsys):
    """--target-host over ssh://: the host's closure, GC roots and disk read there, the
    steps copied there and switched."""
    host = remote_host
    _versions_seen(nix_store, host)
    profile, old, new = _host_with_old_system(host, nix_store)
    budget = _host_used(host) + 14 * MiB
    host.remount(budget)
    code, doc, err = apply_remote(capsys, host, profile, new, budget)
    assert code == 0, err
    assert doc["status"] == "done" and len(doc["steps"]) >= 2
    assert host.run("readlink", "-f", str(profile)).strip() == new
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= budget
    (journal,) = host.run("sh", "-c", f"ls {host.state_dir}/budget-solve/*/journal.json").split()
    assert json.loads(host.run("cat", journal))["status"] == "done"
    assert host.run("nix-store", "--check-validity", "--print-invalid", old).strip() == old
    host.run("nix-store", "--verify", "--check-contents")


def test_nixos_upgrade_over_ssh_ng(remote_host, nix_store, tmp_path, monkeypatch, capsys):
    """--nixos --target-host ssh-ng://: every step evaluated here, its derivations sent
    through the host's nix-daemon, built and switched there."""
    _versions_seen(nix_store, remote_host)
    m = _machine(remote_host, nix_store, tmp_path, monkeypatch)
    calls = tmp_path / "daemon.log"
    daemon = remote_host.bin / "nix-daemon"
    real = remote_host.nix.program("nix-daemon")
    daemon.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec {real} "$@"\n')
    daemon.chmod(0o755)
    _upgraded(remote_host, m, _apply(capsys, remote_host, m, scheme="ssh-ng://"))
    assert "--stdio" in calls.read_text()


def test_a_build_host_of_another_version(
    two_remote_hosts, nix_store, tmp_path, monkeypatch, capsys
):
    """--build-host: the systems built on one host and copied from it to the target,
    both of the other version than here, the target building nothing."""
    target, builder = two_remote_hosts
    _versions_seen(nix_store, target)
    m = _machine(target, nix_store, tmp_path, monkeypatch)
    target.setenv("NIX_CONFIG", "max-jobs = 0")
    _upgraded(target, m, _apply(capsys, target, m, "--build-host", builder.address))
    assert builder.run("nix-store", "--check-validity", m["new"]) == ""
