"""The generated NixOS step module, evaluated and built by the real Nix against a
stand-in nixpkgs (tests/data/standin: an old and a new revision, /bin/sh builders)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from adapters.apply import nixos
from adapters.apply.nixos_inputs import Flake
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.host import LOCAL
from tests.e2e.shell import standin_flake

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

STANDIN = Path(__file__).resolve().parents[1] / "data" / "standin"


def closure_names(path: str) -> set[str]:
    out = subprocess.run(["nix-store", "-qR", path], capture_output=True, text=True, check=True)
    return {Path(p).name.split("-", 1)[1] for p in out.stdout.split()}


def test_classic_and_flake_steps_keep_old_packages(nix_store):
    step = nixos.StepConfig(
        ("hello", "not-in-nixpkgs"),
        str(STANDIN / "old"),
        configuration=str(STANDIN / "configuration.nix"),
    )
    classic = nixos.build_system(
        LOCAL,
        step,
        NixFlags(),
        step_file=nix_store.root / "step.json",
        out_link=nix_store.root / "classic",
        include=[f"nixpkgs={STANDIN / 'new'}"],
    )
    names = closure_names(classic)
    # hello stays at the old revision (with the old glibc); world is upgraded.
    assert {"hello-1.0", "glibc-2.1", "world-2.0", "glibc-2.2"} <= names
    assert "hello-2.0" not in names

    flake = standin_flake(nix_store.root / "flake")
    from_flake = nixos.build_system(
        LOCAL,
        nixos.StepConfig(("hello",), str(STANDIN / "old")),
        NixFlags(),
        step_file=nix_store.root / "step2.json",
        out_link=nix_store.root / "flake-result",
        flake=Flake.parse(f"{flake}#box", LOCAL),
    )
    # Same packages, same glue: the same system whichever way it was described.
    assert from_flake == classic

    everything_new = nixos.build_system(
        LOCAL,
        nixos.StepConfig(
            (), str(STANDIN / "old"), configuration=str(STANDIN / "configuration.nix")
        ),
        NixFlags(),
        step_file=nix_store.root / "step3.json",
        out_link=nix_store.root / "new",
        include=[f"nixpkgs={STANDIN / 'new'}"],
    )
    assert {"hello-2.0", "world-2.0"} <= closure_names(everything_new)
    assert "hello-1.0" not in closure_names(everything_new)


def test_plan_command_evaluates_a_flake_configuration(nix_store, capsys):
    """`budget-solve plan --flake DIR#box`: the configuration evaluated, not built, and the
    upgrade from the running (old) system planned; the same with -I, classic."""
    import json

    from adapters.cli import main

    flake = standin_flake(nix_store.root / "flake")
    old = nixos.build_system(
        LOCAL,
        nixos.StepConfig(("hello", "world"), str(STANDIN / "old")),
        NixFlags(),
        step_file=nix_store.root / "old.json",
        out_link=nix_store.root / "old-system",
        flake=Flake.parse(f"{flake}#box", LOCAL),
    )
    for how in (
        ["--flake", f"{flake}#box"],
        ["-I", f"nixos-config={STANDIN / 'configuration.nix'}", "-I", f"nixpkgs={STANDIN / 'new'}"],
    ):
        with pytest.raises(SystemExit) as e:
            main(["--limit", "1G", "--current", old, *how, "--json", "--quiet"])
        out, err = capsys.readouterr()
        assert e.value.code == 0, err
        doc = json.loads(out)
        upgraded = {n for step in doc["steps"] for n in step["upgrade"]}
        assert {"hello", "world"} <= upgraded, doc
    # Nothing of the new system was built.
    assert not [p for p in nix_store.store_dir.iterdir() if p.name.endswith("-hello-2.0")]


def test_non_vital_tags_are_read_from_the_configuration(nix_store):
    """`budgetSolve.nonVital` (adapters/apply/nixos-module.nix) read from a flake's and a
    classic configuration; [] from one that does not import the module."""
    module = Path(nixos.__file__).with_name("nixos-module.nix")
    flake = standin_flake(nix_store.root / "flake")
    assert nixos.tagged_non_vital(Flake.parse(f"{flake}#box", LOCAL), None, []) == []
    shutil.copy(module, flake / "budget-solve.nix")
    (flake / "configuration.nix").write_text(
        "{ pkgs, ... }: { imports = [ ./budget-solve.nix ];\n"
        "  environment.systemPackages = [ pkgs.hello pkgs.editor ];\n"
        '  budgetSolve.nonVital = [ "editor" ]; }\n'
    )
    tagged = nixos.tagged_non_vital(Flake.parse(f"{flake}#box", LOCAL), None, [])
    assert tagged == ["editor"]
    classic = nixos.tagged_non_vital(
        None, str(flake / "configuration.nix"), [f"nixpkgs={STANDIN / 'new'}"]
    )
    assert classic == ["editor"]
