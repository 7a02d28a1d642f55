"""Sizing a target that is not built: exact from caches, estimated from old versions."""

import hashlib
import json
import random
import subprocess
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.nixstore import versions as nix_versions
from adapters.nixstore.estimate import closure_from_derivation, read_target
from adapters.nixstore.host import LOCAL
from adapters.nixstore.sources import read_source
from solver.closure import Closure

pytestmark = pytest.mark.nix

DATA = Path(__file__).resolve().parents[1] / "data"
STANDIN = DATA / "standin"
TARGET = DATA / "derivations" / "target.nix"


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


def lines(*argv: str) -> list[str]:
    return run(*argv).splitlines()


class Versions:
    """Two versions of tests/data/derivations/target.nix: the fetched file and the source
    tree change (and their sizes a little), the package does not change size."""

    def __init__(self, root: Path) -> None:
        self.root = root
        rng = random.Random(7)
        for version, (blob, tree) in {"1": (1_500_000, 300_000), "2": (1_502_000, 301_000)}.items():
            (root / f"blob{version}").write_bytes(rng.randbytes(blob))
            (root / f"tree{version}").mkdir()
            (root / f"tree{version}" / "lib.txt").write_bytes(rng.randbytes(tree))

    def args(self, version: str) -> list[str]:
        blob = self.root / f"blob{version}"
        return [
            str(TARGET),
            *("--argstr", "version", version),
            *("--argstr", "blobUrl", f"file://{blob}"),
            *("--argstr", "blobHash", hashlib.sha256(blob.read_bytes()).hexdigest()),
            *("--argstr", "tree", str(self.root / f"tree{version}")),
        ]


def within_half_a_percent(sized: Closure, truth: Closure) -> None:
    assert set(sized) == set(truth)
    error = (sized.size() - truth.size()) / truth.size()
    assert abs(error) <= 0.005, f"sized {sized.size():,} B, built {truth.size():,} B"


def test_target_with_fetched_file_and_source_tree(nix_store, tmp_path, capsys):
    """A target whose glue no cache has, with a changed fixed-output file (a fetchurl) and
    a changed source tree in inputSrcs (a flake's nixpkgs), sized from the live .drv and
    from a saved `nix derivation show -r` of this Nix: the built closure within 0.5 %.
    Nix 2.32 and later give no path for the fixed output in that JSON (computed here), and
    no Nix says that registry.json references the tree (its environment names it)."""
    conf = nix_store.root / "etc" / "nix.conf"
    conf.write_text(conf.read_text() + "require-sigs = false\n")
    nix_versions.forget_versions()
    versions = Versions(tmp_path)
    old = tmp_path / "old"
    run("nix-build", *versions.args("1"), "-o", str(old))
    old_drv = run("nix-instantiate", *versions.args("1"))
    drv = run("nix-instantiate", *versions.args("2"))
    saved = tmp_path / "target-drvs.json"
    saved.write_text(run(*nix_versions.show_derivation_argv(nix_versions.version(LOCAL), drv)))
    truth = read_source(run("nix-build", *versions.args("2"), "--no-out-link"))
    current = read_source(str(old))

    def named(suffix: str) -> str:
        return next(p for p in truth if p.endswith(suffix))

    app, blob, source = named("-app-2"), named("-blob.bin"), named("-source")
    # Only the package is in a cache; the rest of the new system is nowhere but the source
    # tree, which evaluation put in the store.
    cache_dir = tmp_path / "cache"
    cache = f"file://{cache_dir}"
    run("nix", "copy", "--to", f"{cache}?compression=none", app)
    run("nix-store", "--delete", *(p for p in truth if p not in current and p != source))

    live = closure_from_derivation(drv, substituters=[cache], like=current)
    within_half_a_percent(live, truth)
    assert not live[app].estimated and not live[source].estimated and live[blob].estimated

    # Another machine: neither the new derivations nor the source tree.
    run(
        "nix-store",
        "--delete",
        *(set(lines("nix-store", "-qR", drv)) - set(lines("nix-store", "-qR", old_drv))),
    )
    sized, top = read_target(str(saved), like=current, substituters=[cache])
    assert top == drv
    within_half_a_percent(sized, truth)
    assert not sized[app].estimated and sized[source].estimated and sized[blob].estimated

    # The verdict says what is estimated, and which caches could not be asked.
    argv = ["--quiet", "--limit", "1G", "--current", str(old), "--target", str(saved)]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--offline", "--json"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["estimated_paths"] == doc["target_paths"] == len(truth)
    assert abs(doc["target_bytes"] - truth.size()) <= 0.005 * truth.size()
    missing = f"file://{tmp_path / 'no-cache'}"
    caches = ["--substituter", "http://127.0.0.1:9/", "--substituter", missing]
    with pytest.raises(SystemExit) as e:
        main([*argv, *caches, "--substituter", cache])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    verdict = out.splitlines()
    assert verdict[-4].startswith(f"estimated: {len(truth) - 1} of the target's {len(truth)}")
    assert verdict[-3].startswith(
        "cache http://127.0.0.1:9/ unreachable: its paths were estimated (unable to download"
    )
    assert verdict[-2].startswith(f"cache {missing} unreachable: its paths were estimated")
    assert verdict[-1].startswith("plan: ")
    assert not (tmp_path / "no-cache").exists()
