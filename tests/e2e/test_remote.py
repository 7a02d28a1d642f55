"""Planning for another host over SSH (`plan --target-host`): its current system, its GC
roots and its disk are the host's; the target is read here; the host is not changed."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from adapters.cli import main
from tests.e2e.shell import sh
from tests.e2e.test_apply import SYSTEM, spawn_apply

pytestmark = pytest.mark.nix

MiB = 1 << 20


def plan(capsys, *argv: str) -> tuple[int, dict, str]:
    with pytest.raises(SystemExit) as e:
        main(["plan", "--json", "--quiet", *argv])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), json.loads(out) if out else {}, err


@pytest.mark.every_nix
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
    # The connection failed, not the input.
    assert code == 1
    (line,) = err.splitlines()
    # The first command there asks for the host's own store directory, which is measured.
    assert line.startswith("error: root@127.0.0.1: printenv NIX_STORE_DIR failed"), line
    assert "Connection refused" in line


def _host_used(host) -> int:
    blocks, free, size = (
        int(w) for w in host.run("stat", "-f", "-c", "%b %f %S", str(host.store_dir)).split()
    )
    return (blocks - free) * size


def _host_with_old_system(host, nix_store):
    """The host runs the old system on its profile; here, only the new one is built."""
    expr = nix_store.write("system.nix", SYSTEM)
    old = host.run("nix-build", str(expr), "--arg", "version", "1", "--no-out-link").strip()
    profile = host.state_dir / "profiles" / "system"
    host.run("mkdir", "-p", str(profile.parent))
    host.run("nix-env", "--profile", str(profile), "--set", old)
    host.run("nix-store", "--gc")
    new = nix_store.run("nix-build", str(expr), "--arg", "version", "2", "--no-out-link").strip()
    return profile, old, new


def apply_remote(capsys, host, profile, new, limit, *more: str) -> tuple[int, dict, str]:
    argv = [
        "apply",
        "--yes",
        "--json",
        "--quiet",
        "--target-host",
        host.address,
        "--profile",
        str(profile),
    ]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--target", new, "--limit", str(limit), "--time-limit", "10", *more])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), json.loads(out) if out else {}, err


@pytest.mark.every_nix
def test_apply_over_ssh_reaches_the_target_where_a_plain_copy_fills_the_disk(
    remote_host, nix_store, capsys
):
    host = remote_host
    profile, old, new = _host_with_old_system(host, nix_store)
    # The host's disk: what it holds now and a bit more than half of what the target adds.
    budget = _host_used(host) + 14 * MiB
    host.remount(budget)
    plain = sh(
        "nix",
        "--extra-experimental-features",
        "nix-command",
        "copy",
        "--to",
        f"ssh://{host.address}",
        new,
        check=False,
    )
    assert plain.returncode != 0 and "No space left on device" in plain.stderr
    host.run("nix-store", "--gc")

    code, doc, err = apply_remote(capsys, host, profile, new, budget)
    assert code == 0, err
    assert doc["status"] == "done"
    assert len(doc["steps"]) >= 2
    assert host.run("readlink", "-f", str(profile)).strip() == new
    for step in doc["steps"]:
        # Measured on the host, while each step copied and built there.
        assert step["measured_peak_bytes"] <= budget
    # The journal is the host's: a rerun from any machine finds it there.
    (journal,) = host.run("sh", "-c", f"ls {host.state_dir}/budget-solve/*/journal.json").split()
    assert json.loads(host.run("cat", journal))["status"] == "done"
    assert not os.path.exists(journal)  # nothing of the run is kept here
    # The old system is gone from the host, and the host's store verifies.
    assert host.run("nix-store", "--check-validity", "--print-invalid", old).strip() == old
    host.run("nix-store", "--verify", "--check-contents")


@pytest.mark.parametrize("room", [0, 64 * MiB])
def test_plain_first_over_ssh(remote_host, nix_store, capsys, room):
    """--plain-first copies the whole target to the host first: where that fills its disk,
    what the copy left is collected and the staged plan takes over; with room, the plain
    upgrade is the one step."""
    host = remote_host
    profile, _old, new = _host_with_old_system(host, nix_store)
    budget = _host_used(host) + 14 * MiB + room
    host.remount(budget)
    code, doc, err = apply_remote(capsys, host, profile, new, budget, "--plain-first")
    assert code == 0, err
    assert doc["status"] == "done"
    assert host.run("readlink", "-f", str(profile)).strip() == new
    if room:
        assert doc["plain_upgrade"] == "done" and len(doc["steps"]) == 1
    else:
        assert doc["plain_upgrade"] == "out of space" and len(doc["steps"]) >= 2
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= budget
    host.run("nix-store", "--verify", "--check-contents")


def _spawn_remote_apply(host, profile, new, limit) -> subprocess.Popen[bytes]:
    argv = [
        "apply",
        "--yes",
        "--quiet",
        "--json",
        "--target-host",
        host.address,
        "--profile",
        str(profile),
    ]
    return spawn_apply([*argv, "--target", new, "--limit", str(limit), "--time-limit", "5"])


def _interrupted(host, profile, new, limit, delay: float, interrupt) -> bool:
    """One run, interrupted by `interrupt(proc)` after `delay` seconds; whether it was."""
    proc = _spawn_remote_apply(host, profile, new, limit)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        interrupt(proc)
        proc.wait(timeout=60)
        return True


def _kill_local(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)


def _drop_connections(host):
    """Every SSH connection to the host dies: its sshd's per-connection children are
    killed, as when the network goes."""

    def drop(_proc) -> None:
        pid = (host.backing.parent / "sshd.pid").read_text().strip()
        subprocess.run(["pkill", "-KILL", "-P", pid], check=False)

    return drop


@pytest.mark.parametrize("interruption", ["sigkill", "ssh-loss"])
def test_an_interrupted_run_over_ssh_resumes_from_the_hosts_journal(
    remote_host, nix_store, capsys, interruption
):
    host = remote_host
    profile, _old, new = _host_with_old_system(host, nix_store)
    budget = _host_used(host) + 14 * MiB
    host.remount(budget)
    interrupt = _kill_local if interruption == "sigkill" else _drop_connections(host)
    # Interruptions spread over the first run's span: early (planning), mid-step, late.
    interrupted = 0
    for delay in (6.0, 9.0, 12.0):
        interrupted += _interrupted(host, profile, new, budget, delay, interrupt)
        current = host.run("readlink", "-f", str(profile)).strip()
        # Whatever the moment, the profile is at a whole generation on the host.
        host.run("nix-store", "--verify-path", current)
        if current == new:
            break
    assert interrupted >= 1
    code, doc, err = apply_remote(capsys, host, profile, new, budget)
    assert code == 0, err
    assert doc["status"] == "done"
    assert host.run("readlink", "-f", str(profile)).strip() == new
    (journal,) = host.run("sh", "-c", f"ls {host.state_dir}/budget-solve/*/journal.json").split()
    assert json.loads(host.run("cat", journal))["status"] == "done"
    host.run("nix-store", "--verify", "--check-contents")


def _stand_in_sudo(host, body: str) -> Path:
    """A `sudo` on the host's PATH that logs its command line, then runs `body`."""
    log = host.bin.parent / "sudo.log"
    script = host.bin / "sudo"
    script.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" | tr "\\n" " " >> {log}\necho >> {log}\n{body}\n'
    )
    script.chmod(0o755)
    return log


def test_sudo_runs_every_command_on_the_host_through_sudo(remote_host, nix_store, capsys):
    host = remote_host
    profile, _old, new = _host_with_old_system(host, nix_store)
    # As root's sudo does: the options, then the command, run as root.
    log = _stand_in_sudo(
        host, '[ "$1" = --non-interactive ] && shift\n[ "$1" = -- ] && shift\nexec "$@"'
    )
    budget = _host_used(host) + 14 * MiB
    host.remount(budget)
    code, doc, err = apply_remote(capsys, host, profile, new, budget, "--sudo")
    assert code == 0, err
    assert doc["status"] == "done"
    assert host.run("readlink", "-f", str(profile)).strip() == new
    calls = log.read_text().splitlines()
    assert all(call.startswith("--non-interactive -- ") for call in calls)
    said = "\n".join(calls)
    # Switching, collecting, the lock, the disk samples, the journal: all through sudo.
    for what in ("nix-env --profile", "nix-store --gc", "flock -n 9", "stat -f", "mktemp"):
        assert what in said, what


def test_sudo_that_wants_a_password_is_one_line(remote_host, nix_store, capsys):
    host = remote_host
    profile, old, new = _host_with_old_system(host, nix_store)
    _stand_in_sudo(host, 'echo "sudo: a password is required" >&2\nexit 1')
    code, _doc, err = apply_remote(capsys, host, profile, new, "auto", "--sudo")
    # sudo failed on the host, not the input.
    assert code == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "a password is required" in line
    # Nothing changed on the host.
    assert host.run("readlink", "-f", str(profile)).strip() == old


def test_the_state_directory_is_the_hosts_own(
    remote_host, nix_store, capsys, tmp_path, monkeypatch
):
    """The journal, the lock and the roots go where the host's environment says, not
    where this machine's does."""
    host = remote_host
    profile, _old, new = _host_with_old_system(host, nix_store)
    here, there = tmp_path / "state-here", tmp_path / "state-there"
    monkeypatch.setenv("BUDGET_SOLVE_STATE_DIR", str(here))
    host.setenv("BUDGET_SOLVE_STATE_DIR", str(there))
    code, doc, err = apply_remote(capsys, host, profile, new, "auto", "--dry-run")
    assert code == 0, err
    assert doc["status"] == "planned"
    assert not here.exists()
    (lock,) = host.run("sh", "-c", f"ls {there}/*/lock").split()
    assert lock.startswith(str(there))
