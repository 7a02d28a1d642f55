"""The apply engine against a fake builder and a fake nix (the `Builder` protocol and the
nix module are its seams): the order of what it does, what it deletes, what it keeps, how
it resumes. The same engine runs against the real Nix in tests/e2e/."""

import os
from pathlib import Path

import pytest

from adapters.apply import executor as ex
from adapters.apply import planning, results
from adapters.apply.builder import ApplyError, Target, generation_entries
from adapters.apply.journal import Journal, RunStatus, state_dir_for
from adapters.apply.measure import Calibration
from adapters.nixstore import builds, nix, profiles
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import LOCAL
from solver.errors import InputError, NixError
from tests.helpers import GiB, user_story

BUDGET = 14 * GiB  # two steps: one big package in both versions at a time


class World:
    """A profile of real symlinks, a store that is a set of names, and a log of events."""

    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.old, self.new = user_story()
        self.events: list[str] = []
        self.valid = set(self.old) | set(self.new)
        self.profile = tmp / "profiles" / "env"
        self.profile.parent.mkdir(parents=True)
        self.fail_build: int | None = None
        monkeypatch.setenv("BUDGET_SOLVE_STATE_DIR", str(tmp / "state"))
        monkeypatch.setenv("NIX_STORE_DIR", "/nix/store")
        self.set_profile(LOCAL, self.profile, self.old.roots[0])
        self.events.clear()
        fakes = {
            nix: {
                "invalid_paths": lambda host, paths: [p for p in paths if p not in self.valid],
                "gc_roots": lambda host: {},
                "dead_paths": lambda host: [],
                "collect_garbage": lambda host: self.events.append("gc"),
            },
            profiles: {
                "set_profile": self.set_profile,
                "delete_generations": self.delete_generations,
            },
            builds: {"realise_path": self.realise},
        }
        for module, fake in fakes.items():
            for name, value in fake.items():
                monkeypatch.setattr(module, name, value)
        monkeypatch.setattr(planning, "read_source", lambda path: self.old)
        monkeypatch.setattr(
            Calibration, "measure", classmethod(lambda cls, *a, **k: cls(1.0, 0, 0))
        )
        monkeypatch.setattr(ex, "PeakSampler", _NoSampler)

    def set_profile(self, host, profile: Path, path: str) -> None:
        number = max(profiles.generations(host, profile), default=0) + 1
        link = profile.with_name(f"{profile.name}-{number}-link")
        link.symlink_to(path)
        tmp = profile.with_name(".tmp")
        tmp.symlink_to(link.name)
        os.replace(tmp, profile)
        self.events.append(f"activate {number}")

    def delete_generations(self, host, profile: Path, numbers) -> None:
        for n in numbers:
            profile.with_name(f"{profile.name}-{n}-link").unlink()
            self.events.append(f"delete {n}")

    def realise(self, host, path: str, flags, *, root: Path, substituters=()) -> str:
        self.events.append("fetch target")
        return path


class _NoSampler:
    peak = 0

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


class FakeBuilder:
    reboots = False
    host = LOCAL
    flags = NixFlags()

    def __init__(self, world: World) -> None:
        self.world = world
        self.profile = world.profile
        self.substituters: list[str] = []

    def identity(self) -> str:
        return self.world.new.roots[0]

    def target(self, old):
        return Target(self.identity(), self.identity(), self.world.new)

    def adjust(self, problem, generations):
        return list(generations)

    def describe(self, problem, gen):
        return {"entries": generation_entries(problem, gen)}

    def build(self, spec, name, out_link: Path) -> str:
        step = int(name.rsplit("-", 1)[1])
        if self.world.fail_build == step:
            self.world.events.append(f"build {step} failed")
            raise NixError(f"cannot build {name}")
        self.world.events.append(f"build {step}")
        path = f"/nix/store/{'g' * 32}-{name}"
        self.world.valid.add(path)
        return path

    def activate(self, path: str) -> None:
        self.world.set_profile(LOCAL, self.profile, path)

    def prepare(self) -> None:
        self.world.events.append("prepare")

    def pinned(self):
        return []

    def booted(self):
        return None

    def non_vital(self):
        return []

    def moved_roots(self):
        return []


@pytest.fixture
def world(tmp_path, monkeypatch):
    return World(tmp_path, monkeypatch)


def engine(world: World) -> ex.Executor:
    return ex.Executor(FakeBuilder(world), show_plan=lambda *_: world.events.append("show plan"))


def test_the_plan_is_shown_before_anything_is_deleted(world):
    result = engine(world).run(BUDGET, time_limit=5)
    assert result.status is results.ApplyStatus.DONE
    assert os.path.realpath(world.profile) == world.new.roots[0]
    events = world.events
    assert events.index("show plan") < events.index("gc")
    assert events == [
        "prepare",
        "show plan",
        "gc",
        "build 1",
        "activate 2",
        "delete 1",
        "gc",
        "fetch target",
        "activate 3",
        "delete 2",
        "gc",
    ]
    assert sorted(profiles.generations(LOCAL, world.profile)) == [3]


def test_dry_run_changes_nothing(world):
    result = engine(world).run(BUDGET, dry_run=True, time_limit=5)
    assert result.status is results.ApplyStatus.PLANNED
    assert world.events == ["show plan"]
    assert os.path.realpath(world.profile) == world.old.roots[0]
    assert Journal.load(LOCAL, state_dir_for(LOCAL, world.profile) / "journal.json") is None
    doc = result.to_json()
    assert len(doc["steps"]) == 2
    assert doc["would_delete_generations"] == [1] and doc["garbage_bytes"] == 0


def test_infeasible_budget_deletes_nothing(world):
    with pytest.raises(planning.InfeasibleError):
        engine(world).run(10 * GiB, time_limit=5)
    assert world.events == ["prepare"]


def test_a_failed_step_is_recorded_and_collects_nothing(world):
    world.fail_build = 1
    with pytest.raises(ApplyError, match="step 1 of 2 failed: cannot build"):
        engine(world).run(BUDGET, time_limit=5)
    # What the failed step fetched stays for the rerun: no collection after the failure.
    assert world.events[-1] == "build 1 failed"
    journal = Journal.load(LOCAL, state_dir_for(LOCAL, world.profile) / "journal.json")
    assert journal.status is RunStatus.FAILED and journal.failed_step == 1
    assert os.path.realpath(world.profile) == world.old.roots[0]
    # The rerun plans afresh and finishes.
    world.fail_build = None
    assert engine(world).run(BUDGET, time_limit=5).status is results.ApplyStatus.DONE


def test_resume_deletes_only_the_runs_own_generations(world):
    # A generation of the user's, older than the run: never deleted.
    world.set_profile(LOCAL, world.profile, world.old.roots[0])  # generation 2 -> the start again
    world.fail_build = None
    run = engine(world)
    # Interrupt the run right after step 1's switch, before it deletes anything.

    def switch_then_die(journal, path):
        run.ops.builder.activate(path)
        raise KeyboardInterrupt

    run.ops.switch = switch_then_die
    with pytest.raises(KeyboardInterrupt):
        run.run(BUDGET, time_limit=5)
    assert sorted(profiles.generations(LOCAL, world.profile)) == [1, 2, 3]
    world.events.clear()
    result = engine(world).run(BUDGET, time_limit=5)
    assert result.status is results.ApplyStatus.DONE
    # Generation 2 (the start) and 3 (the run's) go; generation 1, the user's, stays.
    assert sorted(profiles.generations(LOCAL, world.profile)) == [1, 4]
    assert "delete 1" not in world.events


def test_a_journal_naming_another_last_generation_is_refused(world):
    world.fail_build = 1
    with pytest.raises(ApplyError):
        engine(world).run(BUDGET, time_limit=5)
    path = state_dir_for(LOCAL, world.profile) / "journal.json"
    journal = Journal.load(LOCAL, path)
    elsewhere = "/nix/store/" + "z" * 32 + "-x"
    journal.specs[-1]["path"] = elsewhere
    journal.update(status=RunStatus.RUNNING, paths=[*journal.paths[:-1], elsewhere])
    # Refused as a damaged journal is: bad input (exit 2), remove it.
    with pytest.raises(InputError, match="is not the target"):
        engine(world).run(BUDGET, time_limit=5)


def test_a_declined_run_changes_nothing(world):
    asked = []

    def no(deletions):
        asked.append(deletions)
        world.events.append("asked")
        return False

    run = ex.Executor(
        FakeBuilder(world), show_plan=lambda *_: world.events.append("show plan"), confirm=no
    )
    with pytest.raises(results.DeclinedError, match="nothing was changed"):
        run.run(BUDGET, time_limit=5)
    # Asked after the plan was shown, and before anything was collected or switched.
    assert world.events == ["prepare", "show plan", "asked"]
    (deletions,) = asked
    assert deletions.start_generation == 1 and deletions.start_path == world.old.roots[0]
    assert deletions.steps == 2 and deletions.rollback_bytes is None
    assert sorted(profiles.generations(LOCAL, world.profile)) == [1]
    assert Journal.load(LOCAL, state_dir_for(LOCAL, world.profile) / "journal.json") is None


def test_keep_rollback_keeps_the_generation_before_the_target(world):
    asked = []
    run = ex.Executor(
        FakeBuilder(world), confirm=lambda d: asked.append(d) or True, keep_rollback=True
    )
    assert run.run(BUDGET, time_limit=5).status is results.ApplyStatus.DONE
    gens = profiles.generations(LOCAL, world.profile)
    # The start (1) went when step 1 was current; step 1's generation (2) is the rollback.
    assert sorted(gens) == [2, 3]
    assert gens[3] == world.new.roots[0] and gens[2].endswith("budget-solve-generation-1")
    # What it costs is said before: the bytes of step 1's generation the target lacks.
    assert asked[0].rollback_bytes > 0
