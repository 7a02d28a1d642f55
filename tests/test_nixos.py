"""The NixOS adapter's commands, by their exact argv, and its small parsers."""

import json
import os
import socket
import subprocess

import pytest

from adapters.apply import nixos, nixos_inputs
from adapters.nixstore import process
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import LOCAL, Local
from solver.errors import InputError
from tests.helpers import fake_path

NO_FLAGS = NixFlags()


class Named(Local):
    """This machine under another host name (a --target-host's, say)."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "name", name)

    def hostname(self) -> str:
        return self.name


def test_flake_parse():
    assert nixos.Flake.parse("github:me/cfg#box", LOCAL) == nixos.Flake("github:me/cfg", "box")
    assert nixos.Flake.parse("/etc/nixos#box", LOCAL) == nixos.Flake("path:/etc/nixos", "box")
    # Without #HOST: this machine's hostname, as nixos-rebuild takes it.
    assert nixos.Flake.parse("/etc/nixos", Named("vps1")) == nixos.Flake("path:/etc/nixos", "vps1")
    assert nixos.Flake.parse("/etc/nixos", LOCAL).name == socket.gethostname()
    for bad in ("#box", "x#"):
        with pytest.raises(InputError, match=r"FLAKE\[#HOST\]"):
            nixos.Flake.parse(bad, LOCAL)


def test_old_nixpkgs_from_revision():
    rev = "a" * 40
    assert nixos_inputs.old_nixpkgs_from_revision(rev) == {
        "type": "github",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": rev,
    }
    with pytest.raises(InputError, match="not a nixpkgs git revision"):
        nixos_inputs.old_nixpkgs_from_revision("25.05")


LOCK = {
    "nodes": {
        "nixpkgs": {
            "locked": {
                "lastModified": 1,
                "narHash": "sha256-x",
                "owner": "NixOS",
                "repo": "nixpkgs",
                "rev": "285e77e",
                "type": "github",
            },
        },
        "root": {"inputs": {"nixpkgs": "nixpkgs"}},
    },
    "root": "root",
    "version": 7,
}


def test_old_nixpkgs_from_lock():
    locked = nixos_inputs.old_nixpkgs_from_lock(json.dumps(LOCK))
    assert locked == {
        "narHash": "sha256-x",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": "285e77e",
        "type": "github",
    }
    with pytest.raises(InputError, match="no locked input 'nixpkgs'"):
        nixos_inputs.old_nixpkgs_from_lock(json.dumps({"nodes": {"root": {"inputs": {}}}}))
    with pytest.raises(InputError):
        nixos_inputs.old_nixpkgs_from_lock("{not json")


def _lock(**nodes: object) -> str:
    return json.dumps({"nodes": {"root": {"inputs": {"nixpkgs": "nixpkgs"}}, **nodes}})


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("[1, 2]", "no `nodes`"),
        ("42", "no `nodes`"),
        ('"nodes"', "no `nodes`"),
        ("null", "no `nodes`"),
        ('{"nodes": []}', "no `nodes`"),
        ('{"version": 7}', "no `nodes`"),
        ('{"nodes": {}, "root": "root"}', "no root node 'root'"),
        ('{"nodes": {"x": {}}, "root": ["x"]}', "no `nodes`"),
        ('{"nodes": {"root": {"inputs": []}}}', "no locked input 'nixpkgs'"),
        (_lock(), "no locked input 'nixpkgs'"),
        (_lock(nixpkgs={}), "its node 'nixpkgs' has no `locked`"),
        (_lock(nixpkgs={"locked": "github:NixOS/nixpkgs"}), "no `locked`"),
        (_lock(nixpkgs={"locked": [["type", "github"]]}), "no `locked`"),
        (_lock(nixpkgs={"locked": {"owner": "NixOS"}}), "with a `type`"),
        (_lock(nixpkgs={"locked": {"type": "github", "rev": None}}), "no `locked`"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("{not json", "malformed JSON"),
    ],
    ids=[
        "list",
        "number",
        "string",
        "null",
        "nodes-list",
        "no-nodes",
        "no-root-node",
        "root-not-a-name",
        "inputs-list",
        "no-nixpkgs-node",
        "node-without-locked",
        "locked-string",
        "locked-pairs",
        "locked-without-type",
        "locked-null-value",
        "deep",
        "malformed",
    ],
)
def test_old_nixpkgs_from_lock_refuses_what_is_not_a_lock(text, said):
    """Valid JSON that is not a lock, or a lock without a locked nixpkgs: an InputError
    that names the file, never a KeyError, TypeError, ValueError or RecursionError."""
    with pytest.raises(InputError) as e:
        nixos_inputs.old_nixpkgs_from_lock(text, source="old.lock")
    assert str(e.value).startswith("old.lock: ") and said in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_old_nixpkgs_from_lock_follows_from_the_root():
    """`follows` paths start at the root: ["hm", "nixpkgs"] is hm's own nixpkgs input."""
    lock = {
        "nodes": {
            "hm": {"inputs": {"nixpkgs": "nixpkgs_2"}, "locked": {"type": "github"}},
            "nixpkgs_2": {"locked": {"type": "github", "rev": "b" * 40}},
            "root": {"inputs": {"hm": "hm", "nixpkgs": ["hm", "nixpkgs"]}},
        },
        "root": "root",
    }
    assert nixos_inputs.old_nixpkgs_from_lock(json.dumps(lock))["rev"] == "b" * 40
    # A loop of follows is refused, however long the paths are.
    loop = {"nodes": {"root": {"inputs": {"nixpkgs": ["nixpkgs"] * 1000}}}}
    with pytest.raises(InputError, match="leads nowhere"):
        nixos_inputs.old_nixpkgs_from_lock(json.dumps(loop))


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"  \n"), "empty"),
        (lambda p: p.write_bytes(b"\xff\xfe{" + bytes(range(256))), "not UTF-8"),
        (lambda p: p.write_bytes(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (lambda p: p.write_bytes(b" " * (nixos_inputs.MAX_LOCK_BYTES + 1)), "too large"),
        (lambda p: os.mkfifo(p), "neither a nixpkgs directory nor a flake.lock"),
        (lambda p: p.symlink_to("/dev/zero"), "neither a nixpkgs directory nor a flake.lock"),
        (lambda p: None, "No such file"),
        (lambda p: p.mkdir(), "without default.nix"),
    ],
    ids=["empty", "blank", "binary", "deep", "huge", "fifo", "dev-zero", "missing", "not-nixpkgs"],
)
def test_old_nixpkgs_at_refuses_what_it_cannot_use(tmp_path, make, said):
    path = tmp_path / "flake.lock"
    make(path)
    with pytest.raises(InputError) as e:
        nixos_inputs.old_nixpkgs_at(path)
    assert str(e.value).startswith(f"{path}: ") and said in str(e.value), str(e.value)


def test_old_nixpkgs_at_reads_a_lock_or_a_tree(tmp_path):
    lock = tmp_path / "flake.lock"
    lock.write_text(json.dumps(LOCK))
    assert nixos_inputs.old_nixpkgs_at(lock)["rev"] == "285e77e"
    tree = tmp_path / "nixpkgs"
    tree.mkdir()
    (tree / "default.nix").write_text("{ ... }: {}")
    assert nixos_inputs.old_nixpkgs_at(tree) == str(tree)


def built_argv(monkeypatch, tmp_path, *, flake=None, include=(), flags=NO_FLAGS, subs=()):
    """The argv `build_system` runs, as production builds a step's system."""
    seen = []

    def fake_run(argv, **kwargs):
        seen.append(list(argv))
        out = '[{"outputs": {"out": "/nix/store/x-system"}}]' if flake else "/nix/store/x-system"
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(process, "run", fake_run)
    step = nixos.StepConfig((), "/old")
    nixos.build_system(
        LOCAL,
        step,
        flags,
        step_file=tmp_path / "s.json",
        out_link=tmp_path / "r",
        flake=flake,
        include=include,
        substituters=subs,
    )
    return seen[-1]


def instantiated_argv(monkeypatch, tmp_path, *, flake=None, include=(), flags=NO_FLAGS):
    """The argv `instantiate_system` runs, as production evaluates a step's system."""
    seen = []

    def fake_run(argv, **kwargs):
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "/nix/store/x-system.drv\n", "")

    monkeypatch.setattr(process, "run", fake_run)
    step = nixos.StepConfig((), "/old")
    root = tmp_path / "t.drv"
    nixos.instantiate_system(
        step, flags, step_file=tmp_path / "s.json", root=root, flake=flake, include=include
    )
    return seen[-1]


def test_flake_build_argv(tmp_path, monkeypatch):
    argv = built_argv(monkeypatch, tmp_path, flake=nixos.Flake("path:/cfg", "box"))
    assert argv == [
        "nix",
        "--extra-experimental-features",
        "nix-command flakes",
        "build",
        "--impure",
        "--out-link",
        str(tmp_path / "r"),
        "--json",
        "-f",
        str(nixos.FLAKE_NIX),
        "--argstr",
        "flake",
        "path:/cfg",
        "--argstr",
        "host",
        "box",
    ]


def test_classic_build_argv(tmp_path, monkeypatch):
    argv = built_argv(monkeypatch, tmp_path, include=["nixpkgs=/old"])
    assert argv == [
        "nix-build",
        "<nixpkgs/nixos>",
        "-A",
        "system",
        "-I",
        "nixpkgs=/old",
        "-I",
        f"nixos-config={nixos.CONFIG_NIX}",
        "--out-link",
        str(tmp_path / "r"),
    ]


def test_activate_sets_the_system_profile_then_switches(monkeypatch, tmp_path):
    calls = []

    def fake_run(argv, *, check, env=None, **_):
        calls.append((list(argv), check))

        class Done:
            stdout = ""

        return Done()

    monkeypatch.setenv("NIX_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(process, "run", fake_run)
    nixos.activate(LOCAL, "/nix/store/abc-nixos-system-box", nixos.Activation.BOOT, NO_FLAGS)
    assert calls == [
        (
            [
                "nix-env",
                "--profile",
                str(tmp_path / "profiles" / "system"),
                "--set",
                "/nix/store/abc-nixos-system-box",
            ],
            True,
        ),
        (["/nix/store/abc-nixos-system-box/bin/switch-to-configuration", "boot"], True),
    ]


def test_build_system_passes_the_step_file(monkeypatch, tmp_path):
    seen = {}

    def fake_run(argv, *, check, env=None, **_):
        seen["argv"], seen["env"] = list(argv), env

        class Done:
            stdout = '[{"drvPath": "/d", "outputs": {"out": "/nix/store/x-nixos-system-box"}}]'

        return Done()

    monkeypatch.setattr(process, "run", fake_run)
    step = nixos.StepConfig(("hello",), "/old/nixpkgs")
    out = nixos.build_system(
        LOCAL,
        step,
        NO_FLAGS,
        step_file=tmp_path / "step.json",
        out_link=tmp_path / "r",
        flake=nixos.Flake("path:/cfg", "box"),
    )
    assert out == "/nix/store/x-nixos-system-box"
    assert seen["env"] == {"BUDGET_SOLVE_STEP": str(tmp_path / "step.json")}
    assert json.loads((tmp_path / "step.json").read_text()) == {
        "keepOld": ["hello"],
        "drop": [],
        "oldNixpkgs": "/old/nixpkgs",
    }


def test_build_argv_names_the_substituters(tmp_path, monkeypatch):
    argv = built_argv(monkeypatch, tmp_path, subs=["file:///c", "https://cache"])
    assert argv[-3:] == ["--option", "substituters", "file:///c https://cache"]
    flake = nixos.Flake("path:/cfg", "box")
    argv = built_argv(monkeypatch, tmp_path, flake=flake, subs=["file:///c"])
    assert argv[-3:] == ["--option", "substituters", "file:///c"]


def test_instantiate_argv(tmp_path, monkeypatch):
    root = tmp_path / "t.drv"
    assert instantiated_argv(monkeypatch, tmp_path, include=["nixpkgs=/new"]) == [
        "nix-instantiate",
        "<nixpkgs/nixos>",
        "-A",
        "system",
        "-I",
        "nixpkgs=/new",
        "-I",
        f"nixos-config={nixos.CONFIG_NIX}",
        "--add-root",
        str(root),
    ]
    flake = nixos.Flake("path:/cfg", "box")
    assert instantiated_argv(monkeypatch, tmp_path, flake=flake) == [
        "nix-instantiate",
        "--extra-experimental-features",
        "nix-command flakes",
        str(nixos.FLAKE_NIX),
        "--argstr",
        "flake",
        "path:/cfg",
        "--argstr",
        "host",
        "box",
        "--add-root",
        str(root),
    ]


def test_realisable_moves_additions_and_removals_to_the_first_step():
    from solver.closure import Closure, PathInfo
    from solver.components import Component, Split
    from solver.instance import Problem

    def comp(name, old, new):
        return Component(name, (old,) if old else (), (new,) if new else ())

    f = fake_path
    comps = (
        comp("a", f("a-1"), f("a-2")),
        comp("b", f("b-1"), f("b-2")),
        comp("n", None, f("n-1")),
        comp("r", f("r-1"), None),
    )
    paths = [p for c in comps for p in c.old + c.new]
    closure = Closure([PathInfo(p, 1, ()) for p in paths], paths, check=False)
    problem = Problem(closure, closure, Split(comps, frozenset(), frozenset()))
    old, new = 0, 1
    gens = [(old, old, old, old), (new, old, old, old), (new, old, new, new), (new, new, new, new)]
    # a first, then the addition and the removal, then b: the module cannot hold back the
    # addition or keep the removed package, so both happen in step 1 and step 2 disappears.
    assert nixos.realisable(problem, gens) == [
        (old, old, old, old),
        (new, old, new, new),
        (new, new, new, new),
    ]


def test_attributes_are_the_package_names():
    from solver.components import Component

    c = Component("openssl+curl", (fake_path("openssl-3.0-dev"), fake_path("curl-8.1")), ())
    assert nixos.attributes(c) == ["curl", "openssl"]


def test_remove_booted_root_only_drops_that_root(monkeypatch, tmp_path):
    monkeypatch.setenv("NIX_STATE_DIR", str(tmp_path / "var"))
    gcroots = tmp_path / "var" / "gcroots"
    gcroots.mkdir(parents=True)
    run = tmp_path / "run"
    (gcroots / "booted-system").symlink_to(run / "booted-system")
    (gcroots / "current-system").symlink_to(run / "current-system")
    assert nixos.remove_booted_root(LOCAL, run) == [gcroots / "booted-system"]
    assert sorted(p.name for p in gcroots.iterdir()) == ["current-system"]


def _standin(tmp_path, monkeypatch, name, body):
    """A program `name` on PATH that runs the shell `body`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_old_nixpkgs_defaults_to_the_running_systems(tmp_path, monkeypatch):
    from adapters.cli import builders
    from adapters.nixstore import nix

    rev = "0123456789abcdef0123456789abcdef01234567"
    _standin(
        tmp_path,
        monkeypatch,
        "nixos-version",
        f'echo \'{{"nixosVersion": "25.05.1", "nixpkgsRevision": "{rev}"}}\'',
    )
    assert nix.nixos_revision(LOCAL) == rev
    assert builders._running_nixpkgs(LOCAL)["rev"] == rev


def test_no_nixos_version_asks_for_old_nixpkgs(tmp_path, monkeypatch, capsys):
    from adapters.cli import main

    _standin(tmp_path, monkeypatch, "nixos-version", "exit 1")
    with pytest.raises(SystemExit) as e:
        main(["apply", "--yes", "--limit", "1G", "--nixos", "--flake", "/c#h", "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("error: ") and "--nixos needs --old-nixpkgs" in err


def test_etc_nixos_flake_is_implied(tmp_path, monkeypatch):
    from adapters.cli import builders
    from adapters.cli.apply_options import SystemOptions

    etc = tmp_path / "etc-nixos"
    etc.mkdir()
    (etc / "flake.nix").write_text("{ outputs = _: {}; }")
    monkeypatch.setattr(builders, "ETC_NIXOS", etc)
    old = tmp_path / "old-nixpkgs"
    old.mkdir()
    (old / "default.nix").write_text("{ ... }: {}")
    system = SystemOptions(
        profile=None,
        target=None,
        target_host=None,
        build_host=None,
        sudo=False,
        substituter=(),
        nixos=True,
        flake=None,
        include=(),
        old_nixpkgs=str(old),
        activation="switch",
        booted_system="pin",
    )
    builder = builders.nixos_builder(LOCAL, system, NO_FLAGS)
    assert builder.flake == nixos.Flake(f"path:{etc}", socket.gethostname())
    assert builder.configuration is None


def test_pass_through_flags_reach_builds_and_evaluations(tmp_path, monkeypatch):
    flags = ["--option", "connect-timeout", "5", "--max-jobs", "2", "--show-trace"]
    given = NixFlags(tuple(flags))
    flake = nixos.Flake("path:/cfg", "box")
    assert built_argv(monkeypatch, tmp_path, flake=flake, flags=given)[-len(flags) :] == flags
    assert built_argv(monkeypatch, tmp_path, flags=given)[-len(flags) :] == flags
    argv = instantiated_argv(monkeypatch, tmp_path, flake=flake, flags=given)
    assert argv[-len(flags) :] == flags
    # Without them, nothing is added.
    assert "--show-trace" not in built_argv(monkeypatch, tmp_path, flake=flake)


def test_bad_max_jobs_is_bad_input(capsys):
    from adapters.cli import main

    with pytest.raises(SystemExit) as e:
        main(
            [
                "apply",
                "--yes",
                "--limit",
                "1G",
                "--profile",
                "p",
                "--target",
                "/nix/store/x-y",
                "--max-jobs",
                "many",
                "--quiet",
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and "--max-jobs" in err and "'many'" in err, err


def test_a_local_flake_in_a_git_repository_is_read_as_git(tmp_path):
    """As `nix build PATH#...` and nixos-rebuild read it: git+file where there is a
    repository (untracked files invisible), path: elsewhere."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "hosts" / "box").mkdir(parents=True)
    plain = tmp_path / "plain"
    plain.mkdir()
    assert nixos_inputs.local_flake_ref(str(repo)) == f"git+file://{repo}"
    assert nixos_inputs.local_flake_ref(f"{repo}/hosts/box") == f"git+file://{repo}?dir=hosts/box"
    assert nixos_inputs.local_flake_ref(str(plain)) == f"path:{plain}"
    (repo / ".git" / "shallow").write_text("")
    assert nixos_inputs.local_flake_ref(str(repo)) == f"git+file://{repo}?shallow=1"
    flake = nixos.Flake.parse(f"{repo}#box", LOCAL)
    assert flake == nixos.Flake(f"git+file://{repo}?shallow=1", "box")
