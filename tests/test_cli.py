"""The command line: the JSON contract, exit codes, and one-line errors for bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.cli import main
from solver import search
from solver.units import parse_size

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "scenarios" / "examples"
CURRENT = str(EXAMPLES / "nixos-current.json")
TARGET = str(EXAMPLES / "nixos-target.json")


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--quiet"])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_json_contract(capsys):
    code, out, err = run(
        capsys,
        "--limit",
        "3G",
        "--current",
        CURRENT,
        "--target",
        TARGET,
        "--json",
        "--time-limit",
        "20",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {
        "status",
        "budget_bytes",
        "peak_bytes",
        "lower_bound_steps",
        "min_feasible_budget_bytes",
        "min_budget_lower_bound_bytes",
        "steps",
        "repeatable",
        # What of the target is known and what estimated (all known here: saved files).
        "target_paths",
        "target_bytes",
        "estimated_paths",
        "estimated_bytes",
        "unreachable_caches",
        # What it is for, which `apply --plan` checks.
        "current_roots",
        "target_roots",
        "limit_bytes",
    }
    assert doc["estimated_paths"] == doc["estimated_bytes"] == 0
    assert doc["repeatable"] is True
    assert doc["unreachable_caches"] == [] and doc["target_paths"] > 0
    assert doc["status"] in ("optimal", "feasible")
    assert doc["budget_bytes"] == 3 * 2**30
    assert doc["min_feasible_budget_bytes"] is None
    assert doc["min_budget_lower_bound_bytes"] is None
    assert doc["peak_bytes"] == max(s["peak_bytes"] for s in doc["steps"]) <= doc["budget_bytes"]
    assert 2 <= doc["lower_bound_steps"] <= len(doc["steps"])
    for i, step in enumerate(doc["steps"], start=1):
        assert set(step) == {
            "index",
            "upgrade",
            "add",
            "remove",
            "drop",
            "restore",
            "peak_bytes",
            "store_bytes_after",
            "store_delta_bytes",
            "versions",
            "diff",
        }
        assert step["index"] == i
        assert step["diff"]["size_change_bytes"] == step["store_delta_bytes"]
    changed = [n for s in doc["steps"] for k in ("upgrade", "add", "remove") for n in s[k]]
    assert len(changed) == len(set(changed))
    # Every package a step upgrades is in its diff, with its versions.
    for step in doc["steps"]:
        listed = {
            p["name"] for kind in ("upgraded", "downgraded", "changed") for p in step["diff"][kind]
        }
        # A coupled component (the kernel and its initrd) lists each package.
        assert {name for c in step["upgrade"] for name in c.split("+")} <= listed


def test_human_output(capsys):
    code, out, _ = run(capsys, "--limit", "3G", "--current", CURRENT, "--target", TARGET)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["step", "changes"]
    assert lines[-1].startswith("plan: ")
    assert "█" in out


@pytest.fixture
def deterministic(monkeypatch):
    """The plan command's CP-SAT counts its own work units on one worker: what it proves
    does not depend on how busy the machine is."""

    checked = search.plan_checked

    def plan_checked(*args, **options):
        return checked(*args, **options, deterministic=True)

    # `plan` imports it from solver.search when it runs.
    monkeypatch.setattr(search, "plan_checked", plan_checked)


def test_verdict_says_what_is_proven(capsys, deterministic):
    args = ("--limit", "3G", "--current", CURRENT, "--target", TARGET)
    code, out, _ = run(capsys, *args, "--peak-gap", "5")
    assert code == 0
    verdict = out.splitlines()[-1]
    assert verdict.startswith("plan: 3 steps (fewest possible), peak ")
    assert "above the lowest 3-step peak" in verdict
    code, out, _ = run(capsys, *args, "--peak-gap", "0", "--json")
    assert code == 0 and json.loads(out)["status"] == "optimal"
    code, out, _ = run(capsys, *args, "--peak-gap", "0")
    assert "above the lowest" not in out.splitlines()[-1]


def test_infeasible_exit_3(capsys):
    code, out, _ = run(
        capsys, "--limit", "2.6G", "--current", CURRENT, "--target", TARGET, "--json"
    )
    assert code == 3
    doc = json.loads(out)
    assert doc["status"] == "infeasible" and doc["steps"] == []
    need = doc["min_feasible_budget_bytes"]
    # "infeasible" is a proof: the proven floor under the smallest budget is above 2.6G.
    assert parse_size("2.6G") < doc["min_budget_lower_bound_bytes"] <= need
    code, out, _ = run(
        capsys,
        "--limit",
        str(need),
        "--current",
        CURRENT,
        "--target",
        TARGET,
        "--json",
        "--time-limit",
        "10",
    )
    # A plan is known at `need`: never "infeasible" there. Finding it again from scratch
    # takes CP-SAT some seconds; under a loaded machine "unknown" is the honest answer.
    at = json.loads(out)
    assert at["status"] != "infeasible"
    assert (code == 0 and at["peak_bytes"] <= need) or (code == 3 and at["status"] == "unknown")
    lower = doc["min_budget_lower_bound_bytes"]
    code, out, _ = run(
        capsys, "--limit", str(lower - 1), "--current", CURRENT, "--target", TARGET, "--json"
    )
    assert code == 3 and json.loads(out)["status"] == "infeasible"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


H = "/nix/store/" + "a" * 32
G = "/nix/store/" + "b" * 32
# A nixpkgs tree, as --old-nixpkgs takes one.
OLD_NIXPKGS = str(Path(__file__).resolve().parent / "data" / "standin" / "old")
# The largest path of the example's current system (702 MB).
GIMP = "/nix/store/ssg0f4n4mai97zs3zpcg225z1pavxz0k-gimp-2.6"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--limit", "9G", "--target", "/nonexistent/file.json", "--current", CURRENT],
            "/nonexistent/file.json",
        ),
        (["--limit", "nine", "--target", TARGET, "--current", CURRENT], "invalid size"),
        (["--limit", "-1G", "--target", TARGET, "--current", CURRENT], "invalid size"),
        (["--limit", "9G", "--current", CURRENT], "missing --target SRC"),
        (["--target", TARGET, "--current", CURRENT], "Missing option '--limit'"),
        (
            ["--limit", "9G", "--target", TARGET, "--current", CURRENT, "--non-vital", "nosuchpkg"],
            "nosuchpkg",
        ),
        (
            ["--limit", "9G", "--target", TARGET, "--current", CURRENT, "--couple", "vim"],
            "at least two",
        ),
        (["--limit", "9G", "--target", TARGET, "--current", CURRENT, "--keep", H + "-x"], "--keep"),
        (
            ["--limit", "1M", "--target", TARGET, "--current", CURRENT, "--reserve", "2M"],
            "--reserve 2.0 MiB leaves nothing of --limit 1.0 MiB",
        ),
        (
            ["--limit", "1M", "--target", TARGET, "--current", CURRENT, "--reserve", "1M"],
            "--reserve 1.0 MiB leaves nothing of --limit 1.0 MiB",
        ),
        (
            ["--limit", "100M", "--target", TARGET, "--current", CURRENT, "--keep", GIMP],
            "below what stays pinned",
        ),
        (["--limit", "0", "--target", TARGET, "--current", CURRENT], "a budget of 0 bytes"),
        (["--limit", "0G", "--target", TARGET, "--current", CURRENT], "a budget of 0 bytes"),
        (["--limit", "0.1", "--target", TARGET, "--current", CURRENT], "a budget of 0 bytes"),
        (["--limit", "9G", "--target", TARGET, "--current", CURRENT, "--bogus"], "--bogus"),
        (
            ["--limit", "9G", "--target", TARGET, "--current", CURRENT, "--peak-gap", "-1"],
            "--peak-gap",
        ),
    ],
)
def test_bad_input_one_line_error(capsys, args, message):
    code, _out, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "json"),
        (json.dumps({f"{H}-a-1.0": {"references": []}}), "narSize"),
        (json.dumps({f"{H}-a-1.0": {"narSize": 10, "references": [f"{G}-b-1.0"]}}), f"{G}-b-1.0"),
        (json.dumps({f"{H}-a-1.0": {"narSize": -5, "references": []}}), "negative"),
        (json.dumps({f"{H}-a-1.0": {"narSize": 10**16, "references": []}}), "absurd"),
    ],
)
def test_bad_files_one_line_error(capsys, tmp_path, content, message):
    bad = write(tmp_path, "bad.json", content)
    code, _, err = run(capsys, "--limit", "9G", "--current", CURRENT, "--target", bad)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message.lower() in err.lower()


def test_directory_without_narinfo(capsys, tmp_path):
    code, _, err = run(capsys, "--limit", "9G", "--current", CURRENT, "--target", str(tmp_path))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err


def test_help_explains():
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--profile", "p", "--target", "/nix/store/x-y", "--flake", "/c#h"],
            "--flake needs --nixos",
        ),
        (["--target", "/nix/store/x-y"], "give --profile PROFILE and --target PATH"),
        (["--nixos", "--flake", "/c#h"], "--nixos needs --old-nixpkgs"),
        (["--nixos", "--flake", "/c#h", "--target", "/nix/store/x-y"], "no --profile or --target"),
        (["--nixos", "--flake", "x#", "--old-nixpkgs", OLD_NIXPKGS], "FLAKE[#HOST]"),
        (["--nixos", "--flake", "/c#h", "--old-nixpkgs", "/no/such"], "--old-nixpkgs /no/such"),
        (["--nixos", "-I", "nixos-config=/no/such.nix", "--old-nixpkgs", "."], "no such file"),
    ],
)
def test_apply_usage_errors(capsys, args, message):
    code, _out, err = run(capsys, "apply", "--yes", "--limit", "1G", *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("status", "found", "lower", "expected"),
    [
        (
            "infeasible",
            200 * 2**20 + 4096,
            200 * 2**20 + 4096,
            "infeasible: no plan fits 200.0 MiB (proven); the smallest budget that works "
            "is 200.1 MiB (exactly 209,719,296 B)",
        ),
        (
            "infeasible",
            200 * 2**20 + 8192,
            200 * 2**20 + 4096,
            "infeasible: no plan fits 200.000 MiB (proven); the smallest budget that works "
            "is between 200.003 MiB and 200.008 MiB",
        ),
        (
            "infeasible",
            300 * 2**20,
            250 * 2**20,
            "infeasible: no plan fits 200.0 MiB (proven); the smallest budget that works is "
            "between 250.0 MiB and 300.0 MiB",
        ),
    ],
)
def test_verdicts_never_print_two_sizes_alike(status, found, lower, expected):
    """Rounding never makes "no plan fits X; the smallest budget that works is X": a
    budget that works rounds up, a bound down, with decimals enough to tell them apart."""
    from adapters.cli.text import no_plan
    from solver.search import Result, Status

    result = Result(
        status=Status(status),
        budget=200 * 2**20,
        plan=None,
        lower_bound_steps=0,
        min_feasible_budget=found,
        min_budget_lower_bound=lower,
        peak_floor=0,
        one_step_peak=found,
        seconds=0.0,
    )
    assert no_plan(result) == expected


def test_the_target_is_the_current_system(capsys):
    """Nothing to do: no step (not one that "rebuilds the glue"), proven, exit 0."""
    code, out, _err = run(capsys, "--limit", "9G", "--current", CURRENT, "--target", CURRENT)
    assert code == 0
    assert out.strip() == "nothing to do: the current system is the target"
    code, out, _err = run(
        capsys, "--json", "--limit", "9G", "--current", CURRENT, "--target", CURRENT
    )
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "optimal"
    assert doc["steps"] == [] and doc["lower_bound_steps"] == 0


def test_the_readme_example_gives_the_same_plan_every_run():
    """The README's guarantee: the same inputs and options give the same plan, byte for
    byte, on every run. Each run is a process of its own, as a user's runs are, and the
    runs overlap, so that they also compete for the machine."""
    argv = [sys.executable, "-m", "adapters.cli", "--limit", "3G", "--current", CURRENT]
    argv += ["--target", TARGET, "--json", "--quiet"]
    runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=ROOT) for _ in range(3)]
    outs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0]
    assert outs[0] == outs[1] == outs[2]
    doc = json.loads(outs[0])
    assert doc["repeatable"] is True and len(doc["steps"]) == 3


def test_the_readme_sample_output_is_what_the_example_prints(capsys):
    """The README's sample of a step's changes: each of its lines, in order, is a line of
    what its first command prints ("..." stands for lines left out)."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```\nstep 1 of 3:") + len("```\n")
    sample = readme[start : readme.index("```", start)].splitlines()
    code, out, _err = run(capsys, "--limit", "3G", "--current", CURRENT, "--target", TARGET)
    assert code == 0
    lines = iter(out.splitlines())
    for expected in sample:
        if expected.strip() != "...":
            assert expected in lines, expected
