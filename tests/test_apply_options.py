"""`apply` checks every option before anything runs. The tool runs as root, deletes
generations and collects garbage: a wrong command line must end with exit status 2 and one
`error: ...` line, with nothing locked, read or collected. Here the profile is real (a
generation in a store directory of the test's own), so a command line that passed would
go on to lock it and call Nix; stand-ins for nix, nix-store, ssh and the rest record every
call, and none may have been made."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OLD_NIXPKGS = str(ROOT / "tests" / "data" / "standin" / "old")
H = "a" * 32
# Every program apply may start (adapters/nixstore/nix.py, process.py).
STANDINS = (
    "nix",
    "nix-store",
    "nix-env",
    "nix-build",
    "nix-instantiate",
    "nixos-version",
    "nom",
    "ssh",
    "sudo",
)


@dataclass(frozen=True)
class World:
    tmp: Path
    profile: Path
    target: str
    log: Path
    bin: Path

    def made_nothing(self) -> str | None:
        """What ran or was written, if anything did."""
        if self.log.exists():
            return f"called: {self.log.read_text()!r}"
        for made in ("state", "nix-state"):
            if (self.tmp / made).exists():
                return f"created {self.tmp / made}"
        return None


@pytest.fixture
def world(tmp_path: Path) -> World:
    store = tmp_path / "store"
    (store / f"{H}-x").mkdir(parents=True)
    profile = tmp_path / "profile"
    profile.symlink_to(store / f"{H}-x")
    log = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in STANDINS:
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\nexit 1\n')
        exe.chmod(0o755)
    return World(tmp_path, profile, f"{store}/{'b' * 32}-y", log, bin_dir)


def run(
    world: World, args: list[str], prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{world.bin}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "NIX_STORE_DIR": str(world.tmp / "store"),
        "NIX_STATE_DIR": str(world.tmp / "nix-state"),
        "BUDGET_SOLVE_STATE_DIR": str(world.tmp / "state"),
        "BUDGET_SOLVE_RUN_DIR": str(world.tmp / "run"),
    }
    env.pop("NIX_SSHOPTS", None)
    return subprocess.run(
        [*prefix, sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=world.tmp,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def assert_refused(world: World, result: subprocess.CompletedProcess[str], said: str) -> None:
    where = result.stderr[-2000:]
    assert result.returncode == 2, where
    assert "Traceback" not in result.stderr, where
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), where
    assert said in lines[0], lines[0]
    assert world.made_nothing() is None, world.made_nothing()


# (id, extra arguments after a valid `apply --profile P --target T`, in the message)
OPTIONS = [
    ("max-jobs-huge", ["--max-jobs", "9" * 20], "--max-jobs"),
    ("max-jobs-over-unsigned", ["--max-jobs", str(2**32)], "4294967295"),
    ("max-jobs-arabic-digit", ["--max-jobs", "\u0663"], "--max-jobs"),
    ("max-jobs-negative", ["--max-jobs", "-1"], "--max-jobs"),
    ("max-jobs-spaced", ["--max-jobs", " 3"], "--max-jobs"),
    ("cores-huge", ["--cores", "9" * 20], "--cores"),
    ("cores-over-unsigned", ["--cores", str(2**32)], "4294967295"),
    ("cores-arabic-digit", ["--cores", "\u0663"], "--cores"),
    ("cores-underscore", ["--cores", "1_0"], "--cores"),
    ("cores-thousands-of-digits", ["--cores", "9" * 5000], "--cores"),
    ("option-name-dash", ["--option", "-j", "4"], "--option"),
    ("option-name-space", ["--option", "max jobs", "4"], "--option"),
    ("option-name-empty", ["--option", "", "4"], "--option"),
    ("option-name-control", ["--option", "a\x1bb", "4"], "--option"),
    ("option-value-newline", ["--option", "connect-timeout", "5\nsandbox = false"], "--option"),
    ("option-value-cr", ["--option", "connect-timeout", "5\r"], "--option"),
    ("workers-arabic-digit", ["--workers", "\u0663"], "--workers"),
    ("workers-huge", ["--workers", "9" * 20], "--workers"),
    ("workers-negative", ["--workers", "-4"], "--workers"),
    ("time-limit-arabic-digit", ["--time-limit", "\u0663\u0660"], "--time-limit"),
    ("time-limit-inf", ["--time-limit", "inf"], "--time-limit"),
    ("time-limit-overflow", ["--time-limit", "1e999"], "--time-limit"),
    ("time-limit-negative", ["--time-limit", "-5"], "--time-limit"),
    ("time-limit-underscore", ["--time-limit", "1_0"], "--time-limit"),
    ("reserve-is-limit", ["--reserve", "1G"], "--reserve"),
    ("reserve-over-limit", ["--reserve", "2G"], "--reserve"),
    ("target-host-option", ["--target-host", "-oProxyCommand=touch x"], "--target-host"),
    ("target-host-space", ["--target-host", "root@a b"], "--target-host"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "extra", "said"), OPTIONS, ids=[o[0] for o in OPTIONS])
def test_bad_option_changes_nothing(world, name, extra, said):
    argv = [
        "apply",
        "--yes",
        "--limit",
        "1G",
        "--profile",
        str(world.profile),
        "--target",
        world.target,
    ]
    assert_refused(world, run(world, [*argv, *extra]), said)


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["0", "0G", "0.4"])
def test_zero_limit_changes_nothing(world, limit):
    argv = [
        "apply",
        "--yes",
        "--limit",
        limit,
        "--profile",
        str(world.profile),
        "--target",
        world.target,
    ]
    assert_refused(world, run(world, argv), "a budget of 0 bytes")


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["profile", "./profile", "~/.nix-profile"])
def test_relative_profile_on_a_target_host(world, profile):
    """A profile on another host is named by its absolute path: a relative one would be
    resolved against this machine's working directory."""
    argv = ["apply", "--yes", "--limit", "1G", "--target-host", "root@vps1", "--profile", profile]
    result = run(world, [*argv, "--target", world.target])
    assert_refused(world, result, f"--profile {Path(profile)}: a profile on --target-host")


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


LOCK = {
    "nodes": {
        "nixpkgs": {"locked": {"type": "github", "owner": "NixOS", "repo": "nixpkgs"}},
        "root": {"inputs": {"nixpkgs": "nixpkgs"}},
    },
    "root": "root",
    "version": 7,
}
HUGE = json.dumps(LOCK).encode() + b" " * (5 << 20)
NO_LOCKED = json.dumps({**LOCK, "nodes": {**LOCK["nodes"], "nixpkgs": {}}}).encode()
LOCKED_STRING = json.dumps(
    {**LOCK, "nodes": {**LOCK["nodes"], "nixpkgs": {"locked": "github:NixOS/nixpkgs"}}}
).encode()

# (id, makes the --old-nixpkgs path, in the message)
OLD_NIXPKGS_CASES = [
    ("binary", lambda p: _write(p, os.urandom(200) + b"\xff\xfe"), "not UTF-8"),
    ("deep", lambda p: _write(p, b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    ("empty", lambda p: _write(p, b""), "empty"),
    ("huge", lambda p: _write(p, HUGE), "too large"),
    ("fifo", lambda p: os.mkfifo(p), "neither a nixpkgs directory nor a flake.lock"),
    ("dev-zero", lambda p: p.symlink_to("/dev/zero"), "neither a nixpkgs directory"),
    ("list", lambda p: _write(p, b"[1, 2]"), "not a flake.lock"),
    ("number", lambda p: _write(p, b"42"), "not a flake.lock"),
    ("no-nodes", lambda p: _write(p, b'{"version": 7}'), "not a flake.lock"),
    ("no-root", lambda p: _write(p, b'{"nodes": {}}'), "no root node"),
    ("no-locked", lambda p: _write(p, NO_LOCKED), "no `locked`"),
    ("locked-string", lambda p: _write(p, LOCKED_STRING), "no `locked`"),
    ("not-nixpkgs", lambda p: p.mkdir(), "not a nixpkgs tree"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "make", "said"), OLD_NIXPKGS_CASES, ids=[c[0] for c in OLD_NIXPKGS_CASES]
)
def test_bad_old_nixpkgs_changes_nothing(world, name, make, said):
    """Whatever --old-nixpkgs names is read whole (a few MiB at most) and checked first:
    one line naming it, never a traceback, a hang on a FIFO or memory eaten by /dev/zero."""
    old = world.tmp / "old.lock"
    make(old)
    argv = [
        "apply",
        "--yes",
        "--nixos",
        "--limit",
        "1G",
        "--flake",
        "/c#h",
        "--old-nixpkgs",
        str(old),
    ]
    result = run(world, argv)
    assert_refused(world, result, said)
    assert result.stderr.startswith(f"error: --old-nixpkgs {old}: "), result.stderr


def _without_root() -> tuple[str, ...]:
    """A prefix that runs a command without root's right to read anything: root in a user
    namespace of its own keeps its uid but loses the capabilities over this one's files."""
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-U", "true"], check=False).returncode:
        pytest.skip("running as root, and `unshare -U` cannot drop root's file access here")
    return (unshare, "-U")


@pytest.mark.slow
def test_unreadable_old_nixpkgs_changes_nothing(world):
    old = world.tmp / "nixpkgs"
    old.mkdir()
    (old / "default.nix").write_text("{ ... }: {}")
    old.chmod(0)
    try:
        argv = [
            "apply",
            "--yes",
            "--nixos",
            "--limit",
            "1G",
            "--flake",
            "/c#h",
            "--old-nixpkgs",
            str(old),
        ]
        result = run(world, argv, prefix=_without_root())
    finally:
        old.chmod(0o755)
    assert_refused(world, result, f"--old-nixpkgs {old}: cannot read the nixpkgs tree")
    assert "Permission denied" in result.stderr, result.stderr


@pytest.mark.slow
def test_good_options_reach_nix(world):
    """The control: the same world with options at the ends of their ranges does get past
    the checks, to the lock and the stand-ins."""
    argv = [
        "apply",
        "--yes",
        "--limit",
        "1G",
        "--profile",
        str(world.profile),
        "--target",
        world.target,
    ]
    extra = ["--max-jobs", str(2**32 - 1), "--cores", "0", "--workers", "1"]
    extra += ["--option", "connect-timeout", "5", "--time-limit", "0.5", "--reserve", "1023M"]
    result = run(world, [*argv, *extra])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert world.made_nothing() is not None, result.stderr[-2000:]
