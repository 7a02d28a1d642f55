"""The files and disk of the machine a run changes (adapters/nixstore/host.py and
ssh.py): each method does on a host over SSH what it does here, checked on the test's
second host and on a directory here."""

import os
import threading
import time
from pathlib import Path

import pytest

from adapters.nixstore import process
from adapters.nixstore.host import LOCAL, Held, Host
from adapters.nixstore.ssh import Ssh
from solver.errors import InputError

pytestmark = pytest.mark.nix


def _exercise(host: Host, base: Path, check_file, check_link) -> None:
    """The same calls, on `host`; `check_*` look from outside."""
    journal = base / "state" / "journal.json"
    assert host.read_bytes(journal) is None
    host.write_atomic(journal, '{"a": "é"}\n', mode=0o600)
    assert host.read_bytes(journal) == '{"a": "é"}\n'.encode()
    check_file(journal, '{"a": "é"}\n')
    host.write_atomic(journal, "second\n")
    assert host.read_bytes(journal) == b"second\n"
    assert host.owner(journal).kind == "other"
    state = host.owner(base / "state")
    assert state is not None and state.kind == "directory" and state.uid == state.our_uid
    host.make_dirs(base / "private", mode=0o700)
    assert host.owner(base / "private").mode == 0o700
    assert host.owner(base / "nothing") is None

    roots = base / "roots"
    host.symlink(roots / "first-0", "/nix/store/a")
    host.symlink(roots / "first-1", "/nix/store/b")
    host.symlink(roots / "step-1", "/nix/store/c")
    host.symlink(roots / "step-1", "/nix/store/d")  # replaced, atomically
    check_link(roots / "step-1", "/nix/store/d")
    assert host.links(roots) == {
        "first-0": "/nix/store/a",
        "first-1": "/nix/store/b",
        "step-1": "/nix/store/d",
    }
    assert host.links(base / "missing") == {}
    assert host.is_symlink(roots / "step-1") and not host.is_symlink(roots)
    assert host.is_dir(roots) and not host.is_dir(roots / "step-1")
    assert host.readlink(roots / "step-1") == "/nix/store/d"
    assert host.lexists(roots / "step-1")  # dangling, but there
    assert host.existing([str(roots / "first-0"), str(base / "no"), str(journal)]) == [
        str(roots / "first-0"),
        str(journal),
    ]
    host.unlink_links(roots, "first-")
    assert host.links(roots) == {"step-1": "/nix/store/d"}
    host.unlink_links(roots)
    assert host.links(roots) == {}
    host.symlink(base / "to-state", str(base / "state"))
    assert host.realpath(base / "to-state" / "journal.json") == str(journal)
    host.unlink(journal)
    assert host.read_bytes(journal) is None

    usage = host.usage(base)
    assert 0 < usage.used <= usage.size
    blob = base / "blob"
    host.write_atomic(blob, "x" * 100_000)
    # Whole blocks, the file once however often it is named.
    assert 100_000 <= host.disk_usage([str(blob), str(blob)]) < 100_000 + 64 * 1024
    assert host.disk_usage([]) == 0


def test_host_functions_here(tmp_path):
    _exercise(
        LOCAL,
        tmp_path,
        lambda path, text: path.read_text() == text or pytest.fail(path),
        lambda link, target: os.readlink(link) == target or pytest.fail(link),
    )


@pytest.mark.every_nix
def test_host_functions_over_ssh(remote_host, tmp_path):
    h = remote_host
    # A directory of the host's own: its state directory is not this machine's.
    base = h.state_dir / "host-test"
    there = Ssh.parse(h.address)
    assert there.address == h.address
    _exercise(
        there,
        base,
        lambda path, text: h.run("cat", str(path)) == text or pytest.fail(path),
        lambda link, target: h.run("readlink", str(link)).strip() == target or pytest.fail(),
    )
    store = there.usage(h.store_dir)
    assert not (base / "roots").exists()  # nothing happened here
    blocks, free, size = (
        int(w) for w in h.run("stat", "-f", "-c", "%b %f %S", str(h.store_dir)).split()
    )
    assert store.size == blocks * size
    # Usage moves while we look; within a few MiB of what stat says.
    assert abs(store.used - (blocks - free) * size) < 8 << 20


def _hostile(host: Host, base: Path, chown, make_link, make_dir, listing) -> None:
    """What a hostile state directory holds is refused, on `host`; `chown`, `make_link`,
    `make_dir` and `listing` act from outside, on that machine."""
    profiles = base / "profiles"
    make_dir(profiles)
    make_link(profiles / "system-1-link", "/nix/store/" + "a" * 32 + "-system")
    state = base / "bs" / "system-1"
    host.ensure_private(state.parent, state, state / "roots")
    assert host.owner(state).mode == 0o700
    # A subdirectory replaced by a link to the profiles: refused, and nothing goes there.
    make_link(state / "keep", str(profiles))
    with pytest.raises(InputError, match=r"keep is a symbolic link; refusing to use it"):
        host.ensure_private(state.parent, state, state / "keep")
    with pytest.raises(InputError, match="refusing to delete links in it"):
        host.unlink_links(state / "keep")
    assert listing(profiles) == ["system-1-link"]
    # The journal as a link: never read through.
    make_link(state / "journal.json", str(profiles / "system-1-link"))
    with pytest.raises(InputError, match="refusing to read it"):
        host.read_bytes(state / "journal.json")
    # Written over: the link is replaced, what it points at is untouched.
    make_link(state / "steps", str(profiles))
    host.write_atomic(state / "steps", "{}")
    assert host.owner(state / "steps").kind == "other"
    assert listing(profiles) == ["system-1-link"]
    # The parent: another user's, or writable by others.
    chown(state.parent, 65534, 0o700)
    with pytest.raises(InputError, match="belongs to another user"):
        host.ensure_private(state.parent, state)
    chown(state.parent, 0, 0o777)
    with pytest.raises(InputError, match="writable by others"):
        host.ensure_private(state.parent, state)
    chown(state.parent, 0, 0o700)
    host.ensure_private(state.parent, state)


def _chown_here(path: Path, uid: int, mode: int) -> None:
    os.chown(path, uid, uid)
    path.chmod(mode)


def test_a_hostile_state_directory_here(tmp_path):
    _hostile(
        LOCAL,
        tmp_path,
        _chown_here,
        lambda link, target: os.symlink(target, link),
        lambda d: d.mkdir(),
        lambda d: sorted(os.listdir(d)),
    )


@pytest.mark.every_nix
def test_a_hostile_state_directory_over_ssh(remote_host):
    h = remote_host
    base = h.state_dir / "hostile"
    h.run("mkdir", "-p", str(base))
    there = Ssh.parse(h.address)
    _hostile(
        there,
        base,
        lambda path, uid, mode: h.run("sh", "-c", f"chown {uid} {path} && chmod {mode:o} {path}"),
        lambda link, target: h.run("ln", "-sfn", target, str(link)),
        lambda d: h.run("mkdir", "-p", str(d)),
        lambda d: sorted(h.run("ls", "-A", str(d)).split()),
    )
    lock = base / "bs" / "system-1" / "lock"
    h.run("sh", "-c", f"echo precious > {base}/canary && ln -s {base}/canary {lock}")
    with pytest.raises(InputError, match="refusing to lock it"), there.lock(lock):
        pass
    assert h.run("cat", str(base / "canary")) == "precious\n"


@pytest.mark.every_nix
def test_a_host_lock_is_exclusive_and_goes_with_its_connection(remote_host, monkeypatch):
    h = remote_host
    there = Ssh.parse(h.address)
    lock = h.state_dir / "lock"
    h.run("mkdir", "-p", str(h.state_dir))
    # The ssh commands the locks run, to kill one.
    started: list[process.Running] = []
    start = process.start

    def recorded(*args, **kwargs) -> process.Running:
        started.append(start(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(process, "start", recorded)
    with there.lock(lock):
        with pytest.raises(Held) as held, there.lock(lock):
            pass
        assert "@" in held.value.holder
    with there.lock(lock):
        pass
    # The connection is lost (its ssh killed): the host's side ends, and the lock goes.
    second = there.lock(lock)
    second.__enter__()
    started[-1].kill()
    for _ in range(100):
        try:
            with there.lock(lock):
                break
        except Held:
            time.sleep(0.1)
    else:
        pytest.fail("the lock outlived its connection")
    second.__exit__(None, None, None)


@pytest.mark.every_nix
def test_usage_is_streamed_from_the_host(remote_host):
    h = remote_host
    # The host's store is an empty tmpfs: 1 MiB in it, so that its usage shows.
    h.run("sh", "-c", f"head -c 1048576 /dev/zero > {h.store_dir}/blob")
    seen: list[int] = []
    got = threading.Event()

    def each(used: int) -> None:
        seen.append(used)
        if len(seen) >= 3:
            got.set()

    with Ssh.parse(h.address).usage_samples(h.store_dir, 0.05, each):
        assert got.wait(20), "no samples from the host"
    assert all(used >= 1 << 20 for used in seen)
