"""The `--target X.drv` pipeline behind a stand-in `nix` on PATH, for every Nix version the
tool supports: the verb it takes, the JSON it prints (tests/test_derivations.py has the
shapes, from Nix's documentation and test data), and the same sized closure each time:
exact where the cache has a path, estimated elsewhere."""

import json
import os
import sys
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.nixstore import estimate, nix
from adapters.nixstore.formats import dump_path_info_json
from solver.closure import Closure, PathInfo
from solver.errors import InputError
from tests.test_derivations import VERSIONS, full, shape

STANDIN = Path(__file__).with_name("standin_nix.py")
VERBS = {
    "2.8": ["show-derivation", "show-config", "path-info"],
    "2.18": ["derivation show", "show-derivation", "show-config", "path-info"],
    "2.19": ["derivation show", "show-derivation", "show-config", "path-info"],
    "2.24": ["derivation show", "config show", "show-config", "path-info"],
    "2.30": ["derivation show", "config show", "path-info"],
    "2.33": ["derivation show", "config show", "path-info"],
    "lix": ["derivation show", "show-derivation", "config show", "show-config", "path-info"],
}
GLIBC = 30_000_000
PEAK_28 = 74_004_000


@pytest.fixture(params=sorted(VERSIONS))
def standin(request, tmp_path, monkeypatch):
    name = request.param
    version_text, _verb, kind = VERSIONS[name]
    script = {
        "version": version_text,
        "verbs": VERBS[name],
        "derivations": shape(kind),
        "outputs": {full("topdrv"): full("top")},
        "cache": {full("glibc"): {"narSize": GLIBC, "references": []}},
        "path_info": "list" if kind in ("list", "lix") else "object",
        "json_format": name == "2.33",
        "log": str(tmp_path / "path-info.log"),
    }
    (tmp_path / "script.json").write_text(json.dumps(script))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in ("nix", "nix-store"):
        exe = bin_dir / prog
        exe.write_text(f"#!{sys.executable}\n" + STANDIN.read_text())
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("BUDGET_SOLVE_STANDIN", str(tmp_path / "script.json"))
    monkeypatch.setenv("NIX_STORE_DIR", "/nix/store")
    nix.forget_versions()
    yield name
    nix.forget_versions()


def test_target_drv_sized_alike(standin):
    closure, drv = estimate.read_target(full("topdrv"), substituters=["file:///cache"])
    assert drv == full("topdrv")
    assert sorted(closure) == sorted(full(k) for k in ("top", "sp", "hello", "glibc"))
    glibc = closure[full("glibc")]
    assert glibc.nar_size == GLIBC and not glibc.estimated
    assert closure[full("hello")].estimated
    assert closure[full("hello")].references == (full("glibc"),)


def test_plan_command_on_a_target_drv(standin, tmp_path, capsys):
    """The planning command, start to answer, against each version: the old system is a
    saved path-info file, the target a .drv sized through the stand-in."""
    old = Closure(
        [
            PathInfo(
                "/nix/store/" + "a" * 32 + "-nixos-system-box-24.05",
                1000,
                ("/nix/store/" + "b" * 32 + "-system-path",),
            ),
            PathInfo(
                "/nix/store/" + "b" * 32 + "-system-path",
                1000,
                ("/nix/store/" + "c" * 32 + "-hello-2.11",),
            ),
            PathInfo(
                "/nix/store/" + "c" * 32 + "-hello-2.11",
                5_000_000,
                ("/nix/store/" + "d" * 32 + "-glibc-2.39",),
            ),
            PathInfo("/nix/store/" + "d" * 32 + "-glibc-2.39", 29_000_000, ()),
        ],
        ["/nix/store/" + "a" * 32 + "-nixos-system-box-24.05"],
    )
    current = tmp_path / "current.json"
    current.write_text(dump_path_info_json(old))
    argv = ["--limit", "1G", "--current", str(current), "--target", full("topdrv")]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--target-store", "file:///cache", "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "optimal"
    changed = sorted(n for step in doc["steps"] for n in step["upgrade"])
    assert changed == ["hello"]
    # The same need on every version: what Nix 2.8's shape gives (both systems, glibc's
    # exact size from the cache, build scratch for what must be built).
    assert doc["peak_bytes"] == PEAK_28


def test_saved_derivation_show_as_target(standin, tmp_path):
    """`nix derivation show -r` saved on another machine, in that machine's version's
    shape, read here: the same closure as asking Nix."""
    kind = VERSIONS[standin][2]
    saved = tmp_path / "target-drvs.json"
    saved.write_text(json.dumps(shape(kind)))
    closure, drv = estimate.read_target(str(saved), substituters=["file:///cache"])
    assert drv == full("topdrv")
    asked, _ = estimate.read_target(full("topdrv"), substituters=["file:///cache"])
    assert sorted(closure.infos(), key=lambda i: i.path) == sorted(
        asked.infos(), key=lambda i: i.path
    )


def test_saved_file_with_two_targets_is_refused(standin, tmp_path):
    doc = shape("objects")
    # A second, unrelated top-level derivation.
    doc["/nix/store/" + "9" * 32 + "-other.drv"] = doc[full("glibcdrv")]
    saved = tmp_path / "two.json"
    saved.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="found 2"):
        estimate.read_target(str(saved), substituters=["file:///cache"])


def test_path_info_asks_for_its_json_format_where_nix_has_one(standin, tmp_path):
    """Nix 2.33 deprecates `--json` without `--json-format`; older ones and Lix refuse it."""
    estimate.read_target(full("topdrv"), substituters=["file:///cache"])
    calls = (tmp_path / "path-info.log").read_text().splitlines()
    assert calls
    for call in calls:
        assert ("--json-format 1" in call) == (standin == "2.33"), call
