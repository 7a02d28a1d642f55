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
from adapters.nixstore import estimate, versions
from adapters.nixstore.formats.pathinfo import dump_path_info_json
from solver.closure import Closure, PathInfo
from solver.errors import InputError
from tests.test_derivations import VERSIONS, full, shape

STANDIN = Path(__file__).with_name("standin_nix.py")
# The verbs each version takes. From 2.15 `show-derivation` is a deprecated alias of
# `derivation show`, from 2.20 `show-config` one of `config show`: they still work, with a
# warning on stderr (seen on real 2.26.3 and 2.34.8, tests/e2e/test_standin_conformance.py).
VERBS = {
    "2.8": ["show-derivation", "show-config", "path-info"],
    "2.18": ["derivation show", "show-derivation", "show-config", "path-info"],
    "2.19": ["derivation show", "show-derivation", "show-config", "path-info"],
    "2.24": ["derivation show", "config show", "show-derivation", "show-config", "path-info"],
    "2.30": ["derivation show", "config show", "show-derivation", "show-config", "path-info"],
    "2.33": ["derivation show", "config show", "show-derivation", "show-config", "path-info"],
    "lix": ["derivation show", "show-derivation", "config show", "show-config", "path-info"],
}
DEPRECATED = {
    "2.18": {"show-derivation": "derivation show"},
    "2.19": {"show-derivation": "derivation show"},
    "2.24": {"show-derivation": "derivation show", "show-config": "config show"},
    "2.30": {"show-derivation": "derivation show", "show-config": "config show"},
    "2.33": {"show-derivation": "derivation show", "show-config": "config show"},
}
GLIBC = 30_000_000
PEAK_28 = 74_004_000


def standin_script(name: str, where: Path) -> dict:
    """The stand-in's script for Nix `name` (a key of VERSIONS), its logs in `where`."""
    version_text, _verb, kind = VERSIONS[name]
    derivations = shape(kind)
    if name == "2.8":
        # Nix 2.8's show-derivation has no "name" in a derivation (2.26 has).
        for doc in derivations.values():
            doc.pop("name")
    return {
        "version": version_text,
        "verbs": VERBS[name],
        "deprecated": DEPRECATED.get(name, {}),
        "derivations": derivations,
        "outputs": {full("topdrv"): full("top")},
        "cache": {full("glibc"): {"narSize": GLIBC, "references": []}},
        "path_info": "list" if kind in ("list", "lix") else "object",
        "json_format": name == "2.33",
        # `config show --json` records name their experimental feature (seen on 2.26).
        "experimental_feature_key": name in ("2.24", "2.30", "2.33"),
        "log": str(where / "path-info.log"),
        "calls": str(where / "calls.log"),
    }


def write_standin(script: dict, where: Path) -> Path:
    """The stand-in as `nix` and `nix-store` in `where`/bin, playing `script` (in
    `where`/script.json, which $BUDGET_SOLVE_STANDIN must name); that bin directory."""
    (where / "script.json").write_text(json.dumps(script))
    bin_dir = where / "bin"
    bin_dir.mkdir()
    for prog in ("nix", "nix-store"):
        exe = bin_dir / prog
        exe.write_text(f"#!{sys.executable}\n" + STANDIN.read_text())
        exe.chmod(0o755)
    return bin_dir


def install_standin(script: dict, where: Path, monkeypatch) -> Path:
    """`write_standin`, first on PATH."""
    bin_dir = write_standin(script, where)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("BUDGET_SOLVE_STANDIN", str(where / "script.json"))
    return bin_dir


@pytest.fixture(params=sorted(VERSIONS))
def standin(request, tmp_path, monkeypatch):
    name = request.param
    install_standin(standin_script(name, tmp_path), tmp_path, monkeypatch)
    monkeypatch.setenv("NIX_STORE_DIR", "/nix/store")
    versions.forget_versions()
    yield name
    versions.forget_versions()


@pytest.fixture
def cache(tmp_path) -> str:
    """The binary cache's URL: a directory that is there (what it holds, the stand-in says)."""
    (tmp_path / "cache").mkdir()
    return f"file://{tmp_path / 'cache'}"


def test_target_drv_sized_alike(standin, cache):
    closure, drv = estimate.read_target(full("topdrv"), substituters=[cache])
    assert drv == full("topdrv")
    assert sorted(closure) == sorted(full(k) for k in ("top", "sp", "hello", "glibc"))
    glibc = closure[full("glibc")]
    assert glibc.nar_size == GLIBC and not glibc.estimated
    assert closure[full("hello")].estimated
    assert closure[full("hello")].references == (full("glibc"),)


def test_no_deprecated_verb_is_used(standin, tmp_path):
    """The verbs the tool picks are each version's current ones: a deprecated alias works,
    with a warning on stderr that a user would see."""
    estimate.read_target(full("topdrv"), substituters=[])
    calls = [json.loads(line) for line in (tmp_path / "calls.log").read_text().splitlines()]
    said = [
        " ".join(c[3:5]) if c[3:4] in (["derivation"], ["config"]) else c[3]
        for c in calls
        if c[0] == "nix" and c[1:2] != ["--version"]
    ]
    assert said, calls
    assert not set(said) & set(DEPRECATED.get(standin, {})), said


def test_plan_command_on_a_target_drv(standin, cache, tmp_path, capsys):
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
        main([*argv, "--target-store", cache, "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert e.value.code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "optimal"
    changed = sorted(n for step in doc["steps"] for n in step["upgrade"])
    assert changed == ["hello"]
    # The same need on every version: what Nix 2.8's shape gives (both systems, glibc's
    # exact size from the cache, build scratch for what must be built).
    assert doc["peak_bytes"] == PEAK_28


def test_saved_derivation_show_as_target(standin, cache, tmp_path):
    """`nix derivation show -r` saved on another machine, in that machine's version's
    shape, read here: the same closure as asking Nix."""
    kind = VERSIONS[standin][2]
    saved = tmp_path / "target-drvs.json"
    saved.write_text(json.dumps(shape(kind)))
    closure, drv = estimate.read_target(str(saved), substituters=[cache])
    assert drv == full("topdrv")
    asked, _ = estimate.read_target(full("topdrv"), substituters=[cache])
    assert sorted(closure.infos(), key=lambda i: i.path) == sorted(
        asked.infos(), key=lambda i: i.path
    )


def test_saved_file_with_two_targets_is_refused(standin, cache, tmp_path):
    doc = shape("objects")
    # A second, unrelated top-level derivation.
    doc["/nix/store/" + "9" * 32 + "-other.drv"] = doc[full("glibcdrv")]
    saved = tmp_path / "two.json"
    saved.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="found 2"):
        estimate.read_target(str(saved), substituters=[cache])


def test_path_info_asks_for_its_json_format_where_nix_has_one(standin, cache, tmp_path):
    """Nix 2.33 deprecates `--json` without `--json-format`; older ones and Lix refuse it."""
    estimate.read_target(full("topdrv"), substituters=[cache])
    calls = (tmp_path / "path-info.log").read_text().splitlines()
    assert calls
    for call in calls:
        assert ("--json-format 1" in call) == (standin == "2.33"), call
