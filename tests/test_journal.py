"""The apply journal and lock: a typed, versioned document that survives crashes and
refuses damage with one line saying what to do; a lock a second run cannot take."""

import json
import os

import pytest

from adapters.apply import journal as journal_module
from adapters.apply.journal import (
    VERSION,
    Journal,
    LockedError,
    Phase,
    RunStatus,
    check_state_dir,
    profile_lock,
)
from adapters.apply.measure import Calibration
from adapters.nixstore.host import LOCAL
from solver.errors import InputError


def journal(path):
    return Journal(
        profile="/nix/var/nix/profiles/p",
        target="/nix/store/" + "a" * 32 + "-target",
        budget=1 << 30,
        status=RunStatus.RUNNING,
        start_generation=3,
        newest_generation=3,
        paths=["/nix/store/" + "b" * 32 + "-start", None, "/nix/store/" + "a" * 32 + "-target"],
        specs=[
            {"path": "/nix/store/" + "b" * 32 + "-start"},
            {"entries": []},
            {"path": "/nix/store/" + "a" * 32 + "-target"},
        ],
        summaries=["upgrade a", "upgrade b"],
        plan={"status": "optimal"},
        model_peaks=[10, 12],
        arriving=[5, 6],
        calibration=Calibration(1.1, 100, 200),
        measured=[11, None],
        step=1,
        phase=Phase.SWITCH,
        path=path,
    )


def test_round_trip(tmp_path):
    written = journal(tmp_path / "journal.json")
    written.save()
    read = Journal.load(LOCAL, tmp_path / "journal.json")
    assert read == written
    assert read.steps == 2 and read.status is RunStatus.RUNNING and read.phase is Phase.SWITCH
    read.update(status=RunStatus.DONE)
    assert Journal.load(LOCAL, tmp_path / "journal.json").status is RunStatus.DONE


def test_missing_journal_is_none(tmp_path):
    assert Journal.load(LOCAL, tmp_path / "nothing.json") is None


def _damaged(tmp_path, change):
    doc = journal(tmp_path / "j.json").to_json()
    change(doc)
    # Damaged as a faulty writer would leave it: with a digest of what it wrote.
    doc["digest"] = journal_module._digest(doc)
    (tmp_path / "j.json").write_text(json.dumps(doc))
    with pytest.raises(InputError) as e:
        Journal.load(LOCAL, tmp_path / "j.json")
    message = str(e.value)
    assert "\n" not in message and f"remove {tmp_path / 'j.json'} to plan afresh" in message
    return message


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.pop("specs"), "specs is missing"),
        (lambda d: d.update(paths=5), "paths: list expected"),
        (lambda d: d.update(measured=[]), "measured: 2 entries expected"),
        (lambda d: d.update(calibration={}), "calibration.ratio is missing"),
        (
            lambda d: d.update(calibration={"ratio": 0, "other_bytes": 0, "tolerance_bytes": 0}),
            "calibration.ratio",
        ),
        (lambda d: d.update(status="paused"), "status: unknown value 'paused'"),
        (lambda d: d.update(model_peaks=[True, 1]), "model_peaks[0]"),
        (lambda d: d.update(budget=0), "budget: a positive number"),
        (lambda d: d.update(start_generation=9), "start_generation"),
        (lambda d: d.update(paths=[None, None, "/nix/store/x"]), "the start and the target"),
        (lambda d: d["specs"][-1].update(path="/nix/store/x"), "specs[2].path"),
        (lambda d: d.update(step=7), "step: between 0 and 2"),
        (lambda d: d.update(version=1), "journal version 1"),
        (lambda d: d.update(version="3"), "journal version '3'"),
    ],
)
def test_damaged_fields_are_named(tmp_path, change, named):
    assert named in _damaged(tmp_path, change)


@pytest.mark.parametrize(
    "content",
    [os.urandom(256), b"\xff\xfe", b"[" * 200_000 + b"]" * 200_000, b"[]", b"{"],
)
def test_not_a_journal(tmp_path, content):
    (tmp_path / "j.json").write_bytes(content)
    with pytest.raises(InputError, match="to plan afresh"):
        Journal.load(LOCAL, tmp_path / "j.json")


def test_written_version_is_current(tmp_path):
    journal(tmp_path / "j.json").save()
    assert json.loads((tmp_path / "j.json").read_text())["version"] == VERSION


def test_lock_refuses_a_second_holder(tmp_path):
    with profile_lock(LOCAL, tmp_path, tmp_path / "profile"):
        with pytest.raises(LockedError) as e:
            with profile_lock(LOCAL, tmp_path, tmp_path / "profile"):
                pass
        assert str(e.value) == (
            f"another budget-solve apply is running on {tmp_path / 'profile'} (pid {os.getpid()})"
        )
    # Released with the first: a third run takes it.
    with profile_lock(LOCAL, tmp_path, tmp_path / "profile"):
        pass


def test_state_dir_checks(tmp_path):
    fresh = tmp_path / "a" / "state"
    check_state_dir(LOCAL, fresh)
    assert fresh.is_dir() and (fresh.stat().st_mode & 0o777) == 0o700
    assert all((fresh / name).is_dir() for name in ("roots", "keep", "drvs", "steps"))
    link = tmp_path / "link"
    link.symlink_to(fresh)
    with pytest.raises(InputError, match="is a symbolic link"):
        check_state_dir(LOCAL, link)
    fresh.chmod(0o777)
    with pytest.raises(InputError, match="writable by others"):
        check_state_dir(LOCAL, fresh)


@pytest.mark.parametrize(
    "edit",
    [
        # Each is a field a run acts on: what it deletes, where it ends, what it builds.
        lambda d: d.update(start_generation=1),
        lambda d: d.update(newest_generation=0),
        lambda d: d["paths"].__setitem__(-1, "/nix/store/" + "c" * 32 + "-other"),
        lambda d: d["specs"][-1].update(drv="/nix/store/" + "d" * 32 + "-evil.drv"),
        lambda d: d.update(budget=1 << 40),
        lambda d: d.update(status="running", step=0),
    ],
)
def test_an_edited_journal_is_refused(tmp_path, edit):
    written = journal(tmp_path / "j.json")
    written.save()
    doc = json.loads((tmp_path / "j.json").read_text())
    edit(doc)
    (tmp_path / "j.json").write_text(json.dumps(doc))
    with pytest.raises(InputError) as e:
        Journal.load(LOCAL, tmp_path / "j.json")
    assert "was changed since budget-solve wrote it" in str(e.value)


def test_the_digest_covers_the_whole_document(tmp_path):
    written = journal(tmp_path / "j.json")
    written.save()
    doc = json.loads((tmp_path / "j.json").read_text())
    assert doc["digest"] == journal_module._digest(doc)
    # Rewritten by hand in another key order and spacing: the same document, accepted.
    (tmp_path / "j.json").write_text(json.dumps(dict(reversed(list(doc.items()))), indent=4))
    assert Journal.load(LOCAL, tmp_path / "j.json") == written
