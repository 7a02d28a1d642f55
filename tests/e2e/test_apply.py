"""`budget-solve apply` for real: a throwaway store on a tmpfs as small as the budget.

The current system (a dozen components over shared libraries) fits, the target fits, both
together do not: a plain `nix-store --realise` of the target fails with ENOSPC, and
`apply` reaches the target without any step hitting it.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from adapters.cli import main

pytestmark = pytest.mark.nix

MiB = 1 << 20

SYSTEM = r"""
{ version }:
let
  mk = name: size: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ''
      PATH=/usr/bin:/bin
      echo ${toString deps} > $out
      head -c ${toString size} /dev/urandom >> $out
    '' ];
  };
  v = toString version;
  glibc = mk "glibc-2.39" 2000000 [];
  libs = map (i: mk "lib${toString i}-${if i < 2 then v else "1"}.0" 1000000 [ glibc ]) [ 0 1 2 ];
  pkgs = map (i: mk "pkg${toString i}-${v}.${toString i}" (1500000 + i * 100000)
                    [ glibc (builtins.elemAt libs (i - (i / 3) * 3)) ])
             [ 0 1 2 3 4 5 6 7 8 9 10 11 ];
in mk "nixos-system-box-${v}" 1000 [ (mk "system-path" 1000 pkgs) ]
"""


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed:\n{result.stderr}")
    return result


def used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


@pytest.fixture
def small_store(nix_store, tmp_path, monkeypatch):
    """A store whose directory is a tmpfs; yields (store, remount(size))."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("a tmpfs needs root, and under CI this test must run")
        pytest.skip("mounting a tmpfs needs root")
    store = nix_store.store_dir
    store.mkdir(exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(store))
    conf = nix_store.root / "etc" / "nix.conf"
    conf.write_text(conf.read_text() + "require-sigs = false\n")
    monkeypatch.setenv("BUDGET_SOLVE_STATE_DIR", str(tmp_path / "bs-state"))

    def remount(size: int) -> None:
        sh("mount", "-o", f"remount,size={size}", str(store))

    try:
        yield nix_store, remount
    finally:
        sh("umount", "-l", str(store), check=False)


def test_apply_reaches_target_where_plain_realise_fails(small_store, capsys):
    store, remount = small_store
    expr = store.write("system.nix", SYSTEM)
    profile = store.root / "profiles" / "system"
    profile.parent.mkdir()
    old = sh("nix-build", str(expr), "--arg", "version", "1", "--no-out-link").stdout.strip()
    new = sh("nix-build", str(expr), "--arg", "version", "2", "--no-out-link").stdout.strip()
    cache = f"file://{store.root / 'cache'}"
    sh("nix", "copy", "--to", cache, new)
    sh("nix-env", "--profile", str(profile), "--set", old)
    sh("nix-store", "--gc")
    assert sh("nix-store", "--check-validity", "--print-invalid", new).stdout.strip() == new

    # The budget: the old system plus a bit more than half of what the target adds.
    current = used(store.store_dir)
    budget = current + 14 * MiB
    remount(budget)
    plain = sh("nix-store", "--realise", new, "--option", "substituters", cache, check=False)
    assert plain.returncode != 0
    assert "No space left on device" in plain.stderr
    sh("nix-store", "--gc")

    with pytest.raises(SystemExit) as e:
        main(
            [
                "apply",
                "--quiet",
                "--json",
                "--profile",
                str(profile),
                "--target",
                new,
                "--limit",
                str(budget),
                "--substituter",
                cache,
                "--time-limit",
                "20",
            ]
        )
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "done"
    assert os.path.realpath(profile) == new
    assert len(doc["steps"]) >= 2
    tolerance = doc["calibration"]["tolerance_bytes"]
    for step in doc["steps"]:
        assert step["measured_peak_bytes"] <= budget
        assert step["predicted_peak_bytes"] <= budget
        assert step["measured_peak_bytes"] <= step["predicted_peak_bytes"] + tolerance
