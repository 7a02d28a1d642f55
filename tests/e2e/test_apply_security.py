"""`apply` against a hostile state directory and an edited journal, on real Nix: nothing
outside the tool's own files is written or deleted through a link, and what a run deletes
and where it ends are decided from the profile and the command line, not from the
journal's word. Each case here failed on an earlier version: it deleted the profile's
links, overwrote a file through the lock, or ended "done" somewhere else."""

import json
import os
from pathlib import Path

import pytest

from adapters.apply import executor as executor_module
from adapters.apply import journal as journal_module
from adapters.apply.journal import state_dir_for
from adapters.cli import main
from adapters.nixstore import profiles
from adapters.nixstore.host import LOCAL
from tests.e2e.shell import sh
from tests.e2e.test_apply import apply_argv, prepare

pytestmark = pytest.mark.nix

NOBODY = 65534


def run(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def snapshot(directory: Path) -> dict[str, str]:
    """Every entry of `directory`: name -> link target (or the file's contents)."""
    return {
        p.name: os.readlink(p) if p.is_symlink() else p.read_text()
        for p in sorted(directory.iterdir())
    }


def refused(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.fixture
def world(small_store):
    store, remount = small_store
    profile, old, new, cache, budget, _keep, _pkg = prepare(store, remount)
    # Generation 2 is the user's other system; the run starts from generation 3 (old).
    other = sh("nix-store", "--add", str(store.write("other-system", "u" * 1000))).stdout.strip()
    sh("nix-env", "--profile", str(profile), "--set", other)
    sh("nix-env", "--profile", str(profile), "--set", old)
    sh("nix-env", "--profile", str(profile), "--delete-generations", "1")
    return store, profile, old, new, cache, budget


@pytest.mark.parametrize(
    ("subdir", "dry_run"),
    [("keep", False), ("keep", True), ("roots", False), ("drvs", True), ("steps", False)],
)
def test_a_state_subdirectory_linked_to_the_profiles_is_refused(world, capsys, subdir, dry_run):
    _store, profile, old, new, cache, budget = world
    state = state_dir_for(LOCAL, profile)
    state.mkdir(parents=True, mode=0o700)
    (state / subdir).symlink_to(profile.parent)
    before = snapshot(profile.parent)
    argv = [*apply_argv(profile, new, cache, budget), *(["--dry-run"] * dry_run)]
    code, _out, err = run(capsys, argv)
    refused(code, err)
    assert f"{state / subdir} is a symbolic link" in err
    # Every link of the profile is still there, and nothing was added among them.
    assert snapshot(profile.parent) == before
    assert os.path.realpath(profile) == old


@pytest.mark.parametrize(
    ("name", "content"), [("lock", "the user's data\n"), ("journal.json", "{}\n")]
)
def test_a_state_file_as_a_link_leaves_what_it_points_at_alone(
    world, capsys, tmp_path, name, content
):
    """The lock would be truncated to our pid, the journal read and replaced through."""
    _store, profile, old, new, cache, budget = world
    state = state_dir_for(LOCAL, profile)
    state.mkdir(parents=True, mode=0o700)
    canary = tmp_path / "precious"
    canary.write_text(content)
    (state / name).symlink_to(canary)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    refused(code, err)
    assert canary.read_text() == content
    assert os.path.realpath(profile) == old


@pytest.mark.parametrize("how", ["link to nobody's", "nobody's", "mode 777", "mode 775"])
def test_an_unsafe_parent_directory_is_refused(world, capsys, tmp_path, monkeypatch, how):
    _store, profile, _old, new, cache, budget = world
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    parent = tmp_path / "bs-parent"
    if how == "link to nobody's":
        os.chown(theirs, NOBODY, NOBODY)
        parent.symlink_to(theirs)
    else:
        parent.mkdir(mode=0o755)
        if how == "nobody's":
            os.chown(parent, NOBODY, NOBODY)
        else:
            parent.chmod(int(how.split()[1], 8))
    monkeypatch.setenv("BUDGET_SOLVE_STATE_DIR", str(parent))
    before = snapshot(profile.parent)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    refused(code, err)
    assert "refusing to use it" in err
    assert snapshot(profile.parent) == before
    assert list(theirs.iterdir()) == []


class Crash(BaseException):
    """A power cut, as far as the run can tell: nothing of it is caught."""


def crashed_run(world, capsys, monkeypatch) -> tuple[Path, dict]:
    """A run cut off as step 2 begins: the journal says running, the profile is on step
    1's generation. The journal's path and its document."""
    _store, profile, _old, new, cache, budget = world
    step = executor_module.Executor._step

    def cut(self, journal, k):
        if k == 2:
            raise Crash
        return step(self, journal, k)

    with monkeypatch.context() as m:
        m.setattr(executor_module.Executor, "_step", cut)
        with pytest.raises(Crash):
            main(apply_argv(profile, new, cache, budget))
    capsys.readouterr()
    path = state_dir_for(LOCAL, profile) / "journal.json"
    doc = json.loads(path.read_text())
    assert doc["status"] == "running" and doc["step"] == 2
    return path, doc


def rewrite(path: Path, doc: dict, *, digest: bool) -> None:
    """The journal edited; with `digest`, as a careful forger would (the digest made anew)."""
    if digest:
        doc["digest"] = journal_module._digest(doc)
    path.write_text(json.dumps(doc))


def test_an_edited_journal_is_refused_and_changes_nothing(world, capsys, monkeypatch):
    _store, profile, _old, new, cache, budget = world
    path, doc = crashed_run(world, capsys, monkeypatch)
    before = snapshot(profile.parent)
    doc["start_generation"] = 2  # the user's own generation
    rewrite(path, doc, digest=False)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    refused(code, err)
    assert "was changed since budget-solve wrote it" in err
    assert snapshot(profile.parent) == before


def test_a_forged_start_generation_does_not_delete_the_users(world, capsys, monkeypatch):
    _store, profile, _old, new, cache, budget = world
    path, doc = crashed_run(world, capsys, monkeypatch)
    mine = profiles.generations(LOCAL, profile)[2]
    doc["start_generation"] = 2
    doc["newest_generation"] = 2
    rewrite(path, doc, digest=True)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    assert code == 0, err
    assert os.path.realpath(profile) == new
    assert profiles.generations(LOCAL, profile).get(2) == mine


def test_a_forged_newest_generation_does_not_delete_the_users(world, capsys, monkeypatch):
    """Every generation "newer than the start" by the journal's word: only those pointing at
    a generation of the plan are the run's."""
    _store, profile, _old, new, cache, budget = world
    path, doc = crashed_run(world, capsys, monkeypatch)
    mine = profiles.generations(LOCAL, profile)[2]
    doc["newest_generation"] = 0
    doc["start_generation"] = None
    rewrite(path, doc, digest=True)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    assert code == 0, err
    assert profiles.generations(LOCAL, profile).get(2) == mine


@pytest.mark.parametrize("where", ["paths", "specs", "both"])
def test_a_forged_target_is_not_where_the_run_ends(world, capsys, monkeypatch, where):
    store, profile, _old, new, cache, budget = world
    path, doc = crashed_run(world, capsys, monkeypatch)
    elsewhere = sh("nix-store", "--add", str(store.write("elsewhere", "e" * 100))).stdout.strip()
    if where in ("paths", "both"):
        doc["paths"][-1] = elsewhere
    if where in ("specs", "both"):
        doc["specs"][-1]["path"] = elsewhere
    rewrite(path, doc, digest=True)
    current = os.path.realpath(profile)
    before = snapshot(profile.parent)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    assert code != 0
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert os.path.realpath(profile) == current
    assert snapshot(profile.parent) == before


def test_a_forged_target_derivation_is_never_built(world, capsys, monkeypatch, tmp_path):
    store, profile, _old, new, cache, budget = world
    path, doc = crashed_run(world, capsys, monkeypatch)
    canary = tmp_path / "builder-ran"
    evil = store.write(
        "evil.nix",
        'derivation { name = "evil"; system = builtins.currentSystem; builder = "/bin/sh"; '
        f'args = [ "-c" "echo ran > {canary}; echo > $out" ]; }}',
    )
    drv = sh("nix-instantiate", str(evil)).stdout.strip()
    doc["specs"][-1]["drv"] = drv
    rewrite(path, doc, digest=True)
    code, _out, err = run(capsys, apply_argv(profile, new, cache, budget))
    assert not canary.exists()
    # The target comes from the cache instead, or the forged derivation is refused.
    assert code == 0 or f"{drv} does not build" in err, err
    if code == 0:
        assert os.path.realpath(profile) == new
