"""What a user of a Nix tool expects of any command line: --version, a `help` command,
a --help that loads no solver, output on an ASCII terminal, and a core install that
plans without matplotlib or Dask."""

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from adapters.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "scenarios" / "examples"
README_EXAMPLE = [
    "--limit",
    "3G",
    "--current",
    str(EXAMPLES / "nixos-current.json"),
    "--target",
    str(EXAMPLES / "nixos-target.json"),
]


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def python(code: str, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        check=False,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out == f"budget-solve {version('budget-solve')}\n"


def test_help_command(capsys):
    code, out, _ = run(capsys, "help")
    assert code == 0 and "Commands:" in out and "scenario" in out
    code, out, _ = run(capsys, "help", "apply")
    assert code == 0 and out.startswith("Usage: budget-solve apply") and "--keep-rollback" in out
    code, _, err = run(capsys, "help", "nope")
    assert code == 2 and err.startswith("error: no command 'nope'")


# What a --help must not import: CP-SAT (and pandas with it), numpy, networkx, the extras.
HEAVY = ("ortools", "numpy", "networkx", "matplotlib", "dask", "pandas")


def help_loads(*args: str) -> subprocess.CompletedProcess[str]:
    """`budget-solve ARGS` run in a fresh interpreter; its last line lists the HEAVY
    modules it imported."""
    return python(
        "import sys\nfrom adapters.cli import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )


def test_help_loads_no_solver():
    """`--help` lists the commands without importing them: no CP-SAT, numpy, networkx,
    matplotlib or Dask (what made it take 1.4 s)."""
    done = help_loads("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("[]"), done.stdout


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["plan", "--help"], "plan"),
        (["apply", "--help"], "apply"),
        (["scenario", "--help"], "scenario"),
        (["fleet", "--help"], "fleet"),
        (["--limit", "1G", "--help"], "plan"),  # the default command
    ],
    ids=["plan", "apply", "scenario", "fleet", "default"],
)
def test_command_help_loads_no_solver(args, command):
    """A command's --help imports its options, not what it runs: no CP-SAT, numpy,
    networkx, matplotlib or Dask (what made it take 0.7 s)."""
    done = help_loads(*args)
    assert done.returncode == 0, done.stderr
    assert f"Usage: budget-solve {command} " in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("[]"), done.stdout


BLOCKED = "import sys\nfor m in ('matplotlib', 'dask', 'distributed'):\n    sys.modules[m] = None\n"


def test_core_install_plans_without_matplotlib_or_dask():
    """The README's example plans with neither extra importable."""
    done = python(
        BLOCKED + "from adapters.cli import main\nmain(sys.argv[1:])",
        *README_EXAMPLE,
        "--json",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["steps"]


def test_a_missing_extra_is_named():
    """`fleet --scheduler` without Dask: one line naming the extra."""
    fleet = next((ROOT / "scenarios").glob("fleet*.yaml"), None) or next(
        (ROOT / "scenarios").rglob("*fleet*.yaml")
    )
    done = python(
        BLOCKED + "from adapters.cli import main\nmain(sys.argv[1:])",
        "fleet",
        str(fleet),
        "--scheduler",
        "tcp://127.0.0.1:1",
        "--quiet",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "budget-solve[fleet]" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_ascii_terminal():
    """PYTHONIOENCODING=ascii: the plan prints, arrows and bars in ASCII, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "adapters.cli", *README_EXAMPLE, "--quiet"],
        capture_output=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode("ascii")
    assert "plan: 3 steps" in out and "#" in out and "\\u" not in out


def test_plan_takes_apply_nix_options(capsys, monkeypatch, tmp_path):
    """`plan` takes apply's Nix pass-through options and gives them to the evaluation."""
    import adapters.cli.plan as plan_module
    from solver.errors import InputError

    seen = []

    def instantiate(step, flags, **_):
        seen.append(flags.passed)
        raise InputError("stop here")

    monkeypatch.setattr(plan_module, "instantiate_system", instantiate)
    monkeypatch.setattr(plan_module, "tagged_non_vital", lambda *_: [])
    (tmp_path / "configuration.nix").write_text("{ ... }: { }\n")
    code, _, err = run(
        capsys,
        "plan",
        "--limit",
        "9G",
        "--current",
        str(EXAMPLES / "nixos-current.json"),
        "-I",
        f"nixos-config={tmp_path / 'configuration.nix'}",
        "--option",
        "eval-cache",
        "false",
        "-j",
        "2",
        "--cores",
        "1",
        "--fallback",
        "--show-trace",
        "--quiet",
    )
    assert code == 2 and "stop here" in err
    assert seen == [
        (
            "--option",
            "eval-cache",
            "false",
            "--max-jobs",
            "2",
            "--cores",
            "1",
            "--fallback",
            "--show-trace",
        )
    ]


def test_a_missing_input_is_named_first(capsys):
    """A missing --target is named as such, though /run/current-system is missing too."""
    code, _, err = run(capsys, "--limit", "3G", "--target", "/no/such.json", "--quiet")
    assert code == 2 and err.startswith("error: --target '/no/such.json': no such file")
    code, _, err = run(
        capsys, "--limit", "3G", "--target", README_EXAMPLE[5], "--current", "/no/x", "--quiet"
    )
    assert code == 2 and err.startswith("error: --current '/no/x': no such file")


def test_plan_says_where_an_apply_option_belongs(capsys):
    code, _, err = run(capsys, *README_EXAMPLE, "--ask")
    assert code == 2
    assert err == (
        "error: --ask is an option of `budget-solve apply`: plan changes nothing (see "
        "budget-solve help apply)\n"
    )


def test_path_info_without_recursive_gets_a_hint(capsys, tmp_path):
    """A `nix path-info --json` saved without --recursive lists the top path only."""
    saved = tmp_path / "system.json"
    saved.write_text(
        json.dumps(
            [
                {
                    "path": "/nix/store/" + "a" * 32 + "-hello-2.12",
                    "narSize": 1000,
                    "references": ["/nix/store/" + "b" * 32 + "-glibc-2.39"],
                }
            ]
        )
    )
    code, _, err = run(capsys, "--limit", "3G", "--current", str(saved), "--target", str(saved))
    assert code == 2 and "saved without --recursive?" in err and "glibc-2.39" in err


@pytest.mark.nix
def test_an_evaluation_error_names_the_configuration_not_our_command(capsys, tmp_path):
    """A configuration that does not evaluate: the error says which, with Nix's reason,
    and not the nix-instantiate command line the tool made up."""
    config = tmp_path / "configuration.nix"
    config.write_text("{ ... }: { this is broken\n")
    code, _, err = run(
        capsys,
        "plan",
        "--limit",
        "3G",
        "--current",
        README_EXAMPLE[3],
        "-I",
        f"nixos-config={config}",
        "-I",
        f"nixpkgs={tmp_path}",
        "--quiet",
    )
    assert code == 1
    assert err.startswith(f"error: evaluating the configuration {config} failed"), err
    assert "nix-instantiate" not in err and "--add-root" not in err
