"""The NixOS adapter's commands, by their exact argv, and its small parsers."""

import json

import pytest

from adapters import nixos, process
from solver.errors import InputError


def test_flake_parse():
    assert nixos.Flake.parse("github:me/cfg#box") == nixos.Flake("github:me/cfg", "box")
    assert nixos.Flake.parse("/etc/nixos#box") == nixos.Flake("path:/etc/nixos", "box")
    for bad in ("/etc/nixos", "#box", "x#"):
        with pytest.raises(InputError, match="FLAKE#HOST"):
            nixos.Flake.parse(bad)


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
    locked = nixos.old_nixpkgs_from_lock(json.dumps(LOCK))
    assert locked == {
        "narHash": "sha256-x",
        "owner": "NixOS",
        "repo": "nixpkgs",
        "rev": "285e77e",
        "type": "github",
    }
    with pytest.raises(InputError, match="no locked input 'nixpkgs'"):
        nixos.old_nixpkgs_from_lock(json.dumps({"nodes": {"root": {"inputs": {}}}}))
    with pytest.raises(InputError):
        nixos.old_nixpkgs_from_lock("{not json")


def test_flake_build_argv(tmp_path):
    argv = nixos.flake_build_argv(nixos.Flake("path:/cfg", "box"), tmp_path / "result")
    assert argv == [
        "nix",
        "--extra-experimental-features",
        "nix-command flakes",
        "build",
        "--impure",
        "--out-link",
        str(tmp_path / "result"),
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


def test_classic_build_argv(tmp_path):
    argv = nixos.classic_build_argv(tmp_path / "r", ["nixpkgs=/old"])
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
    nixos.activate("/nix/store/abc-nixos-system-box", nixos.Activation.BOOT)
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
    step = nixos.Step(("hello",), "/old/nixpkgs")
    out = nixos.build_system(
        step,
        step_file=tmp_path / "step.json",
        out_link=tmp_path / "r",
        flake=nixos.Flake("path:/cfg", "box"),
    )
    assert out == "/nix/store/x-nixos-system-box"
    assert seen["env"] == {"BUDGET_SOLVE_STEP": str(tmp_path / "step.json")}
    assert json.loads((tmp_path / "step.json").read_text()) == {
        "keepOld": ["hello"],
        "oldNixpkgs": "/old/nixpkgs",
    }
