"""The command line against a live throwaway store: store paths in, GC roots pinned."""

import json

import pytest

from adapters.cli import main
from adapters.nixstore.sources import read_source

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

SYSTEMS = r"""
let
  mk = name: size: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      echo ${toString deps} > $out
      head -c ${toString size} /dev/zero >> $out
    '' ];
  };
  glibc = mk "glibc-2.39" 300000 [];
  sys = label: pkgs: mk "nixos-system-box-${label}" 100 [ (mk "system-path" 100 pkgs) ];
in {
  old = sys "1" [ (mk "bigA-1.0" 4000000 [ glibc ]) (mk "bigB-1.0" 4000000 [ glibc ]) ];
  new = sys "2" [ (mk "bigA-2.0" 4000000 [ glibc ]) (mk "bigB-2.0" 4000000 [ glibc ]) ];
  tool = mk "tool-1.0" 1000000 [ glibc ];
}
"""


def plan(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["--quiet", "--json", *args])
    out, err = capsys.readouterr()
    return e.value.code, (json.loads(out) if out else None), err


def test_plan_between_live_systems_counts_other_roots(nix_store, capsys):
    expr = nix_store.write("systems.nix", SYSTEMS)
    old = nix_store.build(expr, "old", nix_store.root / "old")
    new = nix_store.build(expr, "new", nix_store.root / "new")
    one_step = read_source(old).size() + read_source(new).size() - 300_120
    budget = str(one_step - 2_000_000)

    code, free, err = plan(capsys, "--limit", budget, "--current", old, "--target", new)
    assert code == 0, err
    assert len(free["steps"]) == 2 and free["status"] == "optimal"

    # Another GC root (a `result` link) pins tool-1.0: its bytes count on every step.
    tool = nix_store.build(expr, "tool", nix_store.root / "result")
    code, pinned, err = plan(capsys, "--limit", budget, "--current", old, "--target", new)
    assert code == 0, err
    # glibc is in both systems already; only tool-1.0 itself is extra.
    assert pinned["peak_bytes"] - free["peak_bytes"] == read_source(tool)[tool].nar_size
    code, same, _ = plan(
        capsys, "--limit", budget, "--current", old, "--target", new, "--no-gc-roots"
    )
    assert same["peak_bytes"] == free["peak_bytes"]

    # The links work as sources too, as /run/current-system does.
    code, linked, _ = plan(
        capsys,
        "--limit",
        budget,
        "--current",
        str(nix_store.root / "old"),
        "--target",
        str(nix_store.root / "new"),
        "--no-gc-roots",
    )
    assert code == 0 and linked["peak_bytes"] == free["peak_bytes"]


def test_target_sized_from_a_binary_cache(nix_store, capsys):
    expr = nix_store.write("systems.nix", SYSTEMS)
    old = nix_store.build(expr, "old", nix_store.root / "old")
    new = nix_store.build(expr, "new", nix_store.root / "new")
    code, local, _ = plan(capsys, "--limit", "20M", "--current", old, "--target", new)
    assert code == 0
    cache = f"file://{nix_store.root / 'cache'}"
    nix_store.run("nix", "copy", "--to", cache, new)
    # Drop the target from the local store: only the cache knows it now.
    (nix_store.root / "new").unlink()
    nix_store.run("nix-store", "--delete", new)
    assert nix_store.run("nix-store", "--check-validity", "--print-invalid", new).strip() == new
    code, cached, err = plan(
        capsys, "--limit", "20M", "--current", old, "--target", new, "--target-store", cache
    )
    assert code == 0, err
    assert cached == local
    code, _, err = plan(capsys, "--limit", "20M", "--current", old, "--target", new)
    assert code == 2 and err.startswith("error: ")


def test_plan_flags_a_limit_against_the_disk(nix_store, capsys):
    """On a live store, `--limit auto` says what it counts, and a --limit above the disk
    is flagged (apply refuses it); from saved files, the local disk is nobody's business."""
    expr = nix_store.write("systems.nix", SYSTEMS)
    old = nix_store.build(expr, "old", nix_store.root / "old")
    new = nix_store.build(expr, "new", nix_store.root / "new")

    def text(*args):
        with pytest.raises(SystemExit) as e:
            main(["--quiet", *args])
        out, err = capsys.readouterr()
        assert e.value.code == 0, err
        return out

    out = text("--limit", "auto", "--current", old, "--target", new)
    assert "--limit auto: " in out and "this plan counts the store's closures only" in out
    out = text("--limit", "1P", "--current", old, "--target", new)
    assert "is more than the filesystem of" in out and "apply refuses it" in out
