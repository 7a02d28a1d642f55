"""Sizing a target that is not built: exact from caches, estimated from old versions."""

import json
import subprocess
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.nixstore.estimate import closure_from_derivation
from adapters.nixstore.sources import read_source

pytestmark = pytest.mark.nix

STANDIN = Path(__file__).resolve().parents[1] / "data" / "standin"


def run(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def test_unbuilt_system_from_its_derivation(nix_store, capsys):
    conf = ["-I", f"nixos-config={STANDIN / 'configuration.nix'}"]
    old = run(
        "nix-build",
        "<nixpkgs/nixos>",
        "-A",
        "system",
        "--no-out-link",
        "-I",
        f"nixpkgs={STANDIN / 'old'}",
        *conf,
    )
    new_args = ["<nixpkgs/nixos>", "-A", "system", "-I", f"nixpkgs={STANDIN / 'new'}", *conf]
    drv = run("nix-instantiate", *new_args)
    # Build the target once to know the truth, cache only world-2.0 and glibc, then forget.
    truth_path = run("nix-build", *new_args, "--no-out-link")
    truth = read_source(truth_path)
    cached = [p for p in truth if p.endswith(("-world-2.0", "-glibc-2.2"))]
    cache = f"file://{nix_store.root / 'cache'}"
    run("nix", "copy", "--to", cache, *cached)
    run(
        "nix-store",
        "--delete",
        truth_path,
        *[p for p in truth if p not in cached and p != truth_path],
    )
    run("nix-store", "--delete", *cached)
    conf_file = nix_store.root / "etc" / "nix.conf"
    conf_file.write_text(conf_file.read_text() + "require-sigs = false\n")

    estimated = closure_from_derivation(drv, substituters=[cache], like=read_source(old))
    assert set(estimated) == set(truth)
    for path in truth:
        info = estimated[path]
        if path in cached:
            assert not info.estimated and info.nar_size == truth[path].nar_size
        else:
            assert info.estimated
    hello = next(p for p in truth if p.endswith("-hello-2.0"))
    old_hello = next(p for p in read_source(old) if p.endswith("-hello-1.0"))
    assert estimated[hello].nar_size == read_source(old)[old_hello].nar_size
    assert set(estimated[hello].references) == set(truth[hello].references)

    # The command line plans to an unbuilt .drv the same way.
    with pytest.raises(SystemExit) as e:
        main(
            [
                "--quiet",
                "--json",
                "--limit",
                "1G",
                "--current",
                old,
                "--target",
                drv,
                "--target-store",
                cache,
            ]
        )
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    assert json.loads(out)["steps"]
