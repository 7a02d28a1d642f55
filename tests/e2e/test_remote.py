"""Planning for another host over SSH (`plan --target-host`): its current system, its GC
roots and its disk are the host's; the target is read here; the host is not changed."""

import json
import os

import pytest

from adapters.cli import main
from tests.e2e.test_apply import SYSTEM

pytestmark = pytest.mark.nix

MiB = 1 << 20


def plan(capsys, *argv: str) -> tuple[int, dict, str]:
    with pytest.raises(SystemExit) as e:
        main(["plan", "--json", "--quiet", *argv])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), json.loads(out) if out else {}, err


def test_plan_for_a_host_over_ssh(remote_host, nix_store, capsys):
    host = remote_host
    expr = nix_store.write("system.nix", SYSTEM)
    # The host runs the old system, as its profile's generation.
    old = host.run("nix-build", str(expr), "--arg", "version", "1", "--no-out-link").strip()
    profile = host.state_dir / "profiles" / "system"
    host.run("mkdir", "-p", str(profile.parent))
    host.run("nix-env", "--profile", str(profile), "--set", old)
    # A GC root of the host's own pins 20 MiB.
    blob = nix_store.write("blob", "b" * (20 * MiB))
    pinned = host.run("nix-store", "--add", str(blob)).strip()
    host.run("nix-store", "--add-root", str(host.state_dir / "gcroots" / "blob"), "-r", pinned)
    # Here, only the new system; the host has none of it, and this store has no old one.
    new = nix_store.run("nix-build", str(expr), "--arg", "version", "2", "--no-out-link").strip()
    assert not os.path.exists(old)
    # The host's disk: its own tmpfs, sized apart from anything here.
    size = 96 * MiB
    host.remount(size)
    argv = ["--target-host", host.address, "--current", str(profile), "--target", new]
    code, doc, err = plan(capsys, *argv, "--limit", "auto")
    assert code == 0, err
    assert doc["budget_bytes"] == size
    assert len(doc["steps"]) >= 1
    with_roots = doc["peak_bytes"]
    code, doc, err = plan(capsys, *argv, "--limit", "auto", "--no-gc-roots")
    assert code == 0, err
    # The host's root is counted in every step.
    assert with_roots - doc["peak_bytes"] >= 20 * MiB
    # Nothing on the host changed: the same generation, and the root.
    assert host.run("readlink", "-f", str(profile)).strip() == old
    assert host.run("ls", str(host.store_dir)).count("-blob") == 1


def test_an_unreachable_host_is_one_line(nix_store, capsys, monkeypatch):
    monkeypatch.setenv("NIX_SSHOPTS", "-p 1 -o ConnectTimeout=5")
    code, _doc, err = plan(
        capsys, "--target-host", "root@127.0.0.1", "--target", "/nix/store/x", "--limit", "auto"
    )
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("error: root@127.0.0.1: stat -f") and "Connection refused" in line
