"""`apply` deletes nothing before the plan is shown, nothing the user made, and never
runs twice on one profile: real Nix, a throwaway store on a budget-sized tmpfs."""

import json
import os
import re
from pathlib import Path

import pytest

from adapters.apply.journal import profile_lock, state_dir_for
from adapters.cli import apply as apply_command
from adapters.cli import main
from adapters.nixstore import builds, profiles
from adapters.nixstore.host import LOCAL
from tests.e2e.shell import sh
from tests.e2e.test_apply import MiB, apply_argv, prepare

pytestmark = pytest.mark.nix


def run(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def garbage(store) -> str:
    """A store path no root reaches: what a collection would delete."""
    path = sh("nix-store", "--add", str(store.write("garbage.txt", "x" * 4096))).stdout.strip()
    assert path in sh("nix-store", "--gc", "--print-dead").stdout.split()
    return path


def test_dry_run_plans_and_changes_nothing(small_store, capsys):
    store, remount = small_store
    profile, old, new, cache, budget, _keep, pkg = prepare(store, remount)
    dead = garbage(store)
    generations = sorted(os.listdir(profile.parent))
    code, out, err = run(capsys, [*apply_argv(profile, new, cache, budget), "--dry-run"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "planned" and len(doc["steps"]) >= 2
    # What a real run would delete: the start generation, and the garbage (at least the
    # file added above, a block's worth).
    assert doc["would_delete_generations"] == [1]
    assert doc["garbage_bytes"] >= 4096
    assert os.path.realpath(profile) == old
    assert sorted(os.listdir(profile.parent)) == generations
    assert Path(dead).exists() and Path(pkg).exists()
    # Nothing of ours is left behind either: no roots, no journal.
    state = state_dir_for(LOCAL, profile)
    assert not (state / "journal.json").exists()
    assert not [p for p in (state / "keep").glob("*")] if (state / "keep").exists() else True


def test_unrooted_target_survives_and_is_reached(small_store, capsys):
    """A target built with --no-out-link and no cache to refetch it from: the run roots it
    before it collects anything."""
    store, remount = small_store
    profile, _old, new, cache, budget, _keep, _pkg = prepare(store, remount, extra=40 * MiB)
    # Fetched once, rooted by nothing; the run is given no cache to fetch it again from.
    sh("nix-store", "--realise", new, "--option", "substituters", f"file://{cache}")
    assert new in sh("nix-store", "--gc", "--print-dead").stdout.split()
    argv = ["apply", "--yes", "--quiet", "--json", "--profile", str(profile), "--target", new]
    code, out, err = run(capsys, [*argv, "--limit", str(budget), "--time-limit", "10"])
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
    assert os.path.realpath(profile) == new
    assert sh("nix-store", "--verify-path", new, check=False).returncode == 0


def test_other_generations_of_the_start_are_kept_and_counted(small_store, capsys):
    """Generations 1 -> old, 2 -> a user's other system, 3 -> old: the run may replace
    generation 3 (its start) and delete what it creates, never 1 or 2."""
    store, remount = small_store
    profile, old, new, cache, budget, _keep, pkg = prepare(store, remount, extra=40 * MiB)
    other = sh("nix-store", "--add", str(store.write("other-system", "u" * 1000))).stdout.strip()
    sh("nix-env", "--profile", str(profile), "--set", other)
    sh("nix-env", "--profile", str(profile), "--set", old)
    before = profiles.generations(LOCAL, profile)
    assert sorted(before) == [1, 2, 3]
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    assert code == 0, err
    after = profiles.generations(LOCAL, profile)
    assert after[1] == before[1] and after[2] == before[2]
    assert 3 not in after
    assert os.path.realpath(profile) == new
    # Generation 1 keeps the old system on disk throughout: the plan counted it.
    assert Path(old).exists() and Path(other).exists() and Path(pkg).exists()


def test_profile_given_as_a_link_to_the_profile(small_store, capsys):
    store, remount = small_store
    profile, _old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    link = store.root / "home-profile"
    link.symlink_to(profile)
    argv = apply_argv(link, new, cache, budget)
    code, _out, err = run(capsys, argv)
    assert code == 0, err
    # The real profile moved; the link still points at it, not at a generation of its own.
    assert os.readlink(link) == str(profile)
    assert os.path.realpath(profile) == new
    assert not list(store.root.glob("home-profile-*-link"))


def test_a_second_run_on_the_profile_is_refused(small_store, capsys):
    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    state = state_dir_for(LOCAL, profile)
    state.mkdir(parents=True, mode=0o700, exist_ok=True)
    with profile_lock(LOCAL, state, profile):
        code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    assert code == 2
    assert err == f"error: another budget-solve apply is running on {profile} (pid {os.getpid()})\n"
    assert os.path.realpath(profile) == old


def test_thousands_of_paths_in_one_generation(nix_store, tmp_path):
    """2,500 entries (about 150 KB of paths): passed in a file, not on the command line."""
    from adapters.apply.profile import GENERATION_NIX

    # One `nix-store --add` for all: one call per file took 76 s (2,500 starts of Nix).
    files = [str(nix_store.write(f"f{i:04d}", str(i))) for i in range(2500)]
    paths = sh("nix-store", "--add", *files).stdout.split()
    assert len(set(paths)) == 2500
    assert sum(len(p) + 1 for p in paths) > 128 * 1024
    out = builds.build_generation(
        LOCAL,
        GENERATION_NIX,
        "budget-solve-generation-1",
        paths,
        out_link=tmp_path / "result",
        paths_file=tmp_path / "paths.json",
        flags=builds.NixFlags(),
    )
    assert len(os.listdir(out)) == 2500
    refs = set(sh("nix-store", "--query", "--references", out).stdout.split())
    assert refs == set(paths)


@pytest.mark.parametrize(
    ("substituter", "says"),
    [
        # A cache directory that is not there: sizing finds it unreachable.
        ("file://{tmp}/no-cache", "no-cache: no such directory"),
        # A refused connection, in libcurl's words: "Couldn't connect to server" (curl
        # 7.88, bookworm's Nix 2.8), "Could not connect to server" (curl 8, Nix 2.26, 2.34).
        ("http://127.0.0.1:9", r"Could(n't| not) connect to server"),
        # Nix 2.8: "don't know how to open Nix store 'not a url'"; 2.26 and 2.34: "Cannot
        # parse Nix store 'not a url'".
        ("not a url", r"(don't know how to open|Cannot parse) Nix store 'not a url'"),
    ],
    ids=["missing-cache", "refused", "not-a-url"],
)
def test_a_target_no_cache_has_is_bad_input(small_store, tmp_path, capsys, substituter, says):
    """The target is only in a cache the run is not given: no step ran, so exit 2 with one
    line naming the target and what Nix said, and nothing is deleted."""
    store, remount = small_store
    profile, old, new, _cache, budget, _keep, _pkg = prepare(store, remount)
    dead = garbage(store)
    argv = [
        "apply",
        "--yes",
        "--quiet",
        "--profile",
        str(profile),
        "--target",
        new,
        "--limit",
        str(budget),
    ]
    substituter = substituter.format(tmp=tmp_path)
    code, out, err = run(capsys, [*argv, "--substituter", substituter])
    assert code == 2, err
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"error: {new} is not in the store and no substituter has it: ")
    assert re.search(says, line), line
    assert os.path.realpath(profile) == old
    assert Path(dead).exists()


def test_a_full_disk_says_so(small_store, capsys, monkeypatch):
    """A disk that fills although the plan said it would not (here: a filesystem that
    claims four times the room it has, as thin-provisioned volumes can): the step that
    fills it fails, and the one line shown is the ENOSPC one, not Nix's last "error:"
    line after it. (A --limit above what the filesystem says it holds is refused before
    anything runs: test_apply.py.)"""
    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    monkeypatch.setattr(apply_command, "filesystem_limit", lambda _host: 4 * budget)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, 4 * budget))
    assert code == 1, err
    (line,) = err.splitlines()
    assert line.startswith("error: step 1 ") and "No space left on device" in line, err
    current = os.path.realpath(profile)
    assert current == old
    assert sh("nix-store", "--verify-path", current, check=False).returncode == 0


def test_a_limit_below_what_the_filesystem_holds_besides_the_store(small_store, capsys):
    """--limit counts the whole filesystem: a limit that leaves the store nothing is bad
    input, said in one line, not "no plan fits 0 B"."""
    store, remount = small_store
    profile, old, new, cache, _budget, _keep, _pkg = prepare(store, remount)
    code, out, err = run(capsys, apply_argv(profile, new, cache, 1 << 20))
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("error: --limit 1.0 MiB leaves nothing for the store: "), line
    # With --json, the same in the failure document.
    doc = json.loads(out)
    assert doc == {"status": "failed", "error": line[7:], "exit_code": 2, "failed_step": None}
    assert os.path.realpath(profile) == old


@pytest.mark.parametrize("no_nom", [False, True], ids=["nom", "no-nom"])
def test_the_build_log_goes_through_nom_when_it_is_installed(
    small_store, tmp_path, capsys, monkeypatch, no_nom
):
    """A `nom` on PATH gets Nix's internal JSON log of every build (`nom --json`, as
    nom-build feeds it); --no-nom, or --quiet, keeps it out."""
    store, remount = small_store
    profile, _old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "nom-input"
    nom = bin_dir / "nom"
    nom.write_text(f'#!/bin/sh\n[ "$1" = --json ] || exit 9\ncat >> {seen}\n')
    nom.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    argv = [a for a in apply_argv(profile, new, cache, budget) if a != "--quiet"]
    code, out, err = run(capsys, [*argv, *(["--no-nom"] if no_nom else [])])
    assert code == 0, err
    assert json.loads(out)["status"] == "done"
    if no_nom:
        assert not seen.exists()
        return
    events = [json.loads(line[5:]) for line in seen.read_text().splitlines() if line[:5] == "@nix "]
    assert any(e["action"] == "start" for e in events)
    # Nix's own messages went to nom, not through our stderr as well.
    assert "@nix " not in err


def _without_yes(argv: list[str]) -> list[str]:
    return [a for a in argv if a != "--yes"]


def test_without_a_terminal_and_yes_nothing_runs(small_store, capsys):
    store, remount = small_store
    profile, _old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    dead = garbage(store)
    before = sorted(os.listdir(profile.parent))
    code, _out, err = run(capsys, _without_yes(apply_argv(profile, new, cache, budget)))
    assert code == 2 and err.count("\n") == 1 and "give --yes" in err, err
    assert sorted(os.listdir(profile.parent)) == before and Path(dead).exists()
    assert not state_dir_for(LOCAL, profile).exists()


@pytest.mark.parametrize("answer", ["n", "", "y"])
def test_the_question_comes_before_any_deletion(small_store, capsys, monkeypatch, answer):
    """On a terminal: what goes is said (the start generation, the rollback with it, the
    garbage), then asked; anything but yes changes nothing."""
    import io

    from adapters.cli import apply as apply_cli

    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    dead = garbage(store)
    before = sorted(os.listdir(profile.parent))
    monkeypatch.setattr(apply_cli, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{answer}\n"))
    code, out, err = run(capsys, _without_yes(apply_argv(profile, new, cache, budget)))
    assert f"this run deletes generation 1 of {profile} ({old})" in err
    assert "the rollback to the running system goes with it" in err
    assert "Proceed? [y/N]" in err
    if answer != "y":
        assert code == 1 and err.endswith("error: not confirmed; nothing was changed\n"), err
        assert sorted(os.listdir(profile.parent)) == before and Path(dead).exists()
        assert os.path.realpath(profile) == old
        return
    assert code == 0, err
    assert json.loads(out)["status"] == "done" and os.path.realpath(profile) == new
    assert not Path(dead).exists()


def test_a_real_terminal_is_asked(small_store):
    """The same on a pseudo-terminal: the prompt is read from it, and "n" stops the run."""
    import pty
    import subprocess
    import sys

    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    before = sorted(os.listdir(profile.parent))
    master, slave = pty.openpty()
    argv = _without_yes(apply_argv(profile, new, cache, budget))
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", *argv],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    os.close(slave)
    os.write(master, b"n\n")
    _out, err = proc.communicate(timeout=300)
    os.close(master)
    assert proc.returncode == 1, err
    assert b"Proceed? [y/N]" in err and b"not confirmed; nothing was changed" in err
    assert sorted(os.listdir(profile.parent)) == before and os.path.realpath(profile) == old


def test_keep_rollback_keeps_the_generation_before_the_target(small_store, capsys):
    store, remount = small_store
    profile, _old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    # Not --quiet: what the run keeps and deletes is said even with --yes.
    argv = [a for a in apply_argv(profile, new, cache, budget) if a != "--quiet"]
    code, out, err = run(capsys, [*argv, "--keep-rollback"])
    assert code == 0, err
    doc = json.loads(out)
    assert "as the rollback" in err and "more on disk after the run" in err
    gens = profiles.generations(LOCAL, profile)
    # The target, and the generation before it, which is the plan's last intermediate one.
    assert len(gens) == 2 and gens[max(gens)] == new
    rollback = gens[min(gens)]
    assert rollback == doc["steps"][-2]["path"]
    assert sh("nix-store", "--verify-path", rollback, check=False).returncode == 0
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= budget
