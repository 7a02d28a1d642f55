"""Exit statuses: each error carries its own, one map covers click's and the OS's, and
`apply --json` says a failure in a document as well as on stderr."""

import json
import logging
from pathlib import Path

import click
import pytest

from adapters.apply.builder import ApplyError
from adapters.apply.journal import LockedError
from adapters.apply.planning import InfeasibleError
from adapters.apply.results import ApplyStatus, DeclinedError
from adapters.cli import apply as apply_cli
from adapters.cli import main
from adapters.cli.failures import exit_code, message
from adapters.nixstore import loading
from adapters.nixstore.nix import CacheUnreachableError
from solver.errors import (
    BudgetSolveError,
    ClosureError,
    ConnectionLostError,
    ExitCode,
    InputError,
    NixError,
)
from solver.instance import Problem
from solver.search import plan_checked
from solver.validate import ValidationError
from tests.helpers import GiB, SystemBuilder

EXAMPLES = Path(__file__).resolve().parent.parent / "scenarios" / "examples"
TARGET = str(EXAMPLES / "nixos-target.json")
STORE_PATH = "/nix/store/" + "a" * 32 + "-env"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InputError("bad size"), 2),
        (ClosureError("dangling reference"), 2),
        (LockedError("another budget-solve apply is running"), 2),
        (click.UsageError("--sudo is for --target-host"), 2),
        (FileNotFoundError(2, "No such file or directory", "x.json"), 2),
        (NixError("nix-store --realise failed"), 1),
        (CacheUnreachableError("cache down"), 1),
        (ConnectionLostError("ssh: connect to host x port 22"), 1),
        (ApplyError("step 2 of 3 failed", step=2), 1),
        (DeclinedError("not confirmed"), 1),
        (ValidationError("step 1 needs more than the budget"), 1),
        (BudgetSolveError("anything else"), 1),
        (KeyboardInterrupt(), 130),
        (click.Abort(), 130),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_every_error_has_its_exit_status(error, code):
    assert exit_code(error) == code


def test_the_exit_statuses_are_the_documented_ones():
    assert {c.name: c.value for c in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "INPUT": 2,
        "NO_PLAN": 3,
        "REBOOT": 4,
        "INTERRUPTED": 130,
    }
    assert InfeasibleError.exit_code is ExitCode.NO_PLAN
    assert ApplyStatus.REBOOT.exit_code is ExitCode.REBOOT
    assert ApplyStatus.DONE.exit_code is ApplyStatus.PLANNED.exit_code is ExitCode.OK


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (InputError("--profile /tmp/a\nb: no such"), "--profile /tmp/a\\nb: no such"),
        (InputError("name \x1b[31mred"), "name \\x1b[31mred"),
        (InputError("path /tmp/\udcff"), "path /tmp/\\udcff"),
        (
            FileNotFoundError(2, "No such file or directory", "a\rb"),
            "No such file or directory: a\\rb",
        ),
    ],
    ids=["newline", "escape", "not-utf-8", "os-error"],
)
def test_messages_are_one_line_with_escapes(error, said):
    assert message(error) == said


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([*args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_a_nix_failure_is_not_bad_input(capsys, monkeypatch):
    def failing(*_args, **_kwargs):
        raise NixError("nix path-info failed with exit code 1: cannot connect to the daemon")

    # `plan` imports the loader when it runs.
    monkeypatch.setattr(loading, "load_problem", failing)
    code, _out, err = run(capsys, "--limit", "9G", "--target", TARGET, "--quiet")
    assert code == 1
    assert err == "error: nix path-info failed with exit code 1: cannot connect to the daemon\n"


APPLY = ["apply", "--yes", "--json", "--quiet", "--limit", "1G", "--target", STORE_PATH]


def test_apply_json_documents_bad_input(capsys, tmp_path):
    """A wrong --profile: the document and the stderr line say the same, exit 2."""
    code, out, err = run(capsys, *APPLY, "--profile", str(tmp_path / "missing"))
    assert code == 2
    doc = json.loads(out)
    assert doc == {
        "status": "failed",
        "error": f"profile {tmp_path / 'missing'}: no such profile",
        "exit_code": 2,
        "failed_step": None,
    }
    assert err == f"error: {doc['error']}\n"


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--limit", "9X"], "Invalid value for '--limit': invalid size '9X'"),
        (["--bogus"], "No such option '--bogus'"),
        (["--workers", "x"], "Invalid value for '--workers'"),
        (["--plan", "."], "Invalid value for '--plan'"),
    ],
)
def test_apply_json_documents_a_command_line_click_rejects(capsys, given, said):
    """Click rejects these while parsing, before apply runs: with --json they are a
    document too, the same as the stderr line, exit 2."""
    code, out, err = run(capsys, "apply", "--json", "--target", STORE_PATH, *given)
    assert code == 2
    doc = json.loads(out)
    assert doc["error"].startswith(said)
    assert doc == {"status": "failed", "error": doc["error"], "exit_code": 2, "failed_step": None}
    assert err == f"error: {doc['error']}\n"


def test_apply_without_json_prints_nothing_on_stdout_for_a_command_line_click_rejects(capsys):
    code, out, err = run(capsys, "apply", "--target", STORE_PATH, "--bogus")
    assert (code, out) == (2, "")
    assert err == "error: No such option '--bogus'.\n"


@pytest.mark.parametrize(
    ("error", "code", "step"),
    [
        (ApplyError("step 2 of 3 failed: No space left on device", step=2), 1, 2),
        (NixError("nix-store --gc failed with exit code 1: disk I/O error"), 1, None),
        (LockedError("another budget-solve apply is running on p (pid 7)"), 2, None),
        (DeclinedError("not confirmed; nothing was changed"), 1, None),
        (KeyboardInterrupt(), 130, None),
    ],
    ids=["step", "nix", "locked", "declined", "interrupted"],
)
def test_apply_json_documents_a_failed_run(capsys, monkeypatch, tmp_path, error, code, step):
    def failing(_options):
        raise error

    monkeypatch.setattr(apply_cli, "_apply", failing)
    got, out, err = run(capsys, *APPLY, "--profile", str(tmp_path / "p"))
    assert got == code
    assert json.loads(out) == {
        "status": "failed",
        "error": message(error),
        "exit_code": code,
        "failed_step": step,
    }
    # (Ctrl-C: click ends the terminal's `^C` line first.)
    assert err.lstrip("\n") == f"error: {message(error)}\n"


def test_apply_json_documents_no_plan(capsys, monkeypatch, tmp_path):
    """No plan fits: the plan's document (status infeasible, the budget that would do)
    with the failure's keys."""
    builder = SystemBuilder("x")
    old = builder.system([builder.add("a-1.0", GiB)])
    new_builder = SystemBuilder("y")
    new = new_builder.system([new_builder.add("a-2.0", GiB)])
    result, _ = plan_checked(Problem.of(old, new), GiB, time_limit=5, workers=1)
    assert result.plan is None

    def failing(_options):
        raise InfeasibleError(result)

    monkeypatch.setattr(apply_cli, "_apply", failing)
    code, out, err = run(capsys, *APPLY, "--profile", str(tmp_path / "p"))
    assert code == 3
    doc = json.loads(out)
    assert doc["status"] == result.status.value and doc["exit_code"] == 3
    assert doc["failed_step"] is None and doc["steps"] == []
    assert doc["min_feasible_budget_bytes"] > GiB
    assert err == f"error: {doc['error']}\n" and doc["error"].startswith("no plan")


@pytest.mark.parametrize("quiet", [True, False])
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_quiet_silences_warnings(capsys, monkeypatch, caplog, tmp_path, quiet, command):
    """-q: no warning either (a cache that cannot be reached is said in the plan's output,
    and by apply's failure if it matters); errors still are."""

    def warn(*_args, **_kwargs):
        logging.getLogger("adapters.nixstore.estimate").warning("cache x unreachable")
        raise InputError("stop here")

    monkeypatch.setattr(loading, "load_problem", warn)
    monkeypatch.setattr(apply_cli, "_apply", warn)
    args = ["--limit", "9G", "--target", TARGET]
    if command == "apply":
        args = [*APPLY[:2], "--limit", "1G", "--target", STORE_PATH, "--profile", "p"]
    code, _out, err = run(capsys, *args, *(["--quiet"] if quiet else []))
    assert code == 2 and err == "error: stop here\n"
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert bool(warned) is not quiet
    # The level comes back after the command.
    assert logging.getLogger().level < logging.ERROR


def test_quiet_leaves_the_level_as_it_was_after_a_wrong_option(capsys):
    """-q is read before --peak-gap is refused: the level comes back all the same."""
    before = logging.getLogger().level
    code, _out, err = run(capsys, "--limit", "9G", "--target", TARGET, "-q", "--peak-gap", "-1")
    assert code == 2 and "--peak-gap" in err
    assert logging.getLogger().level == before
