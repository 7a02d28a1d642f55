"""Derivation JSON of every Nix from 2.8 to 2.33 and Lix, and the verb each one takes.

The shapes follow Nix's own documentation and test data (NixOS/nix
`doc/manual/source/protocols/json/schema/derivation-v3.yaml`, `derivation-v4.yaml`,
`src/libstore-tests/data/derivation/simple-derivation.json`, `dyn-dep-derivation.json`):
- Nix <= 2.18 and Lix: full paths, `inputDrvs` values are lists of output names;
- 2.19 on: `inputDrvs` values are `{"outputs": [...], "dynamicOutputs": {...}}`;
- derivation version 3: store paths as base names;
- version 4: `inputs.drvs` / `inputs.srcs`, the output wrapped in
  `{"version": 4, "derivations": {...}}` keyed by base names.
The whole `--target X.drv` sizing runs on each, behind a process gate that replays the
version's output, and must size the same closure.
"""

import json
from types import SimpleNamespace

import pytest

from adapters.nixstore import estimate, formats, nix, process
from solver.closure import PathInfo
from solver.errors import NixError

STORE = "/nix/store"
H = {
    "top": "0" * 31 + "a",
    "sp": "1" * 31 + "b",
    "hello": "2" * 31 + "c",
    "glibc": "3" * 31 + "d",
    "topdrv": "4" * 31 + "f",
    "spdrv": "5" * 31 + "g",
    "hellodrv": "6" * 31 + "h",
    "glibcdrv": "7" * 31 + "i",
    "src": "8" * 31 + "j",
}
NAMES = {
    "top": "nixos-system-box-24.11",
    "sp": "system-path",
    "hello": "hello-2.12",
    "glibc": "glibc-2.40",
    "src": "builder.sh",
}
DRVS = {  # drv -> (its output, its input derivations)
    "topdrv": ("top", ["spdrv"]),
    "spdrv": ("sp", ["hellodrv"]),
    "hellodrv": ("hello", ["glibcdrv"]),
    "glibcdrv": ("glibc", []),
}


def base(key: str) -> str:
    if key.endswith("drv"):
        return f"{H[key]}-{NAMES[key[:-3]]}.drv"
    return f"{H[key]}-{NAMES[key]}"


def full(key: str) -> str:
    return f"{STORE}/{base(key)}"


def shape(kind: str) -> object:
    """The `nix ... show -r TOP.drv` output of one Nix generation, for the same graph."""
    short = kind in ("v3", "v4")
    name = base if short else full
    out = {}
    for drv, (output, inputs) in DRVS.items():
        outputs = {"out": {"path": name(output)}}
        if kind in ("list", "lix"):
            input_drvs = {name(i): ["out"] for i in inputs}
        else:
            input_drvs = {name(i): {"dynamicOutputs": {}, "outputs": ["out"]} for i in inputs}
        doc = {
            "name": NAMES[output],
            "outputs": outputs,
            "system": "x86_64-linux",
            "builder": "/bin/sh",
            "args": [],
            "env": {"out": full(output)},
        }
        if kind == "v4":
            doc |= {"version": 4, "inputs": {"drvs": input_drvs, "srcs": [name("src")]}}
        else:
            doc |= {"inputDrvs": input_drvs, "inputSrcs": [name("src")]}
            if kind == "v3":
                doc["version"] = 3
        out[base(drv) if kind == "v4" else full(drv)] = doc
    if kind == "v4":
        return {"version": 4, "derivations": out}
    return out


VERSIONS = {  # `nix --version`, the verb it takes, the JSON it prints
    "2.8": ("nix (Nix) 2.8.0", ["show-derivation"], "list"),
    "2.18": ("nix (Nix) 2.18.9", ["derivation", "show"], "list"),
    "2.19": ("nix (Nix) 2.19.2", ["derivation", "show"], "objects"),
    "2.24": ("nix (Nix) 2.24.14", ["derivation", "show"], "objects"),
    "2.30": ("nix (Nix) 2.30.2", ["derivation", "show"], "v3"),
    "2.33": ("nix (Nix) 2.33.0", ["derivation", "show"], "v4"),
    "lix": ("nix (Lix, like Nix) 2.91.1", ["derivation", "show"], "lix"),
}


@pytest.mark.parametrize("kind", ["list", "objects", "v3", "v4", "lix"])
def test_every_shape_reads_the_same(kind):
    expected = formats.parse_derivations(shape("list"), "list", STORE)
    got = formats.parse_derivations(shape(kind), kind, STORE)
    assert got == expected
    top = got[full("topdrv")]
    assert top.outputs == {"out": full("top")}
    assert top.input_drvs == {full("spdrv"): ("out",)}
    assert top.input_srcs == (full("src"),)


def test_nix_test_data_v4_samples():
    """src/libstore-tests/data/derivation/simple-derivation.json and dyn-dep-derivation.json
    (their inputs), as Nix's own tests have them."""
    inputs = {
        "drvs": {
            "c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep2.drv": {
                "dynamicOutputs": {},
                "outputs": ["cat", "dog"],
            }
        },
        "srcs": ["c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep1"],
    }
    simple = {
        "args": ["bar", "baz"],
        "builder": "foo",
        "env": {"BIG_BAD": "WOLF"},
        "inputs": inputs,
        "name": "simple-derivation",
        "outputs": {},
        "system": "wasm-sel4",
        "version": 4,
    }
    dyn = json.loads(json.dumps(simple)) | {"name": "dyn-dep-derivation"}
    dyn["inputs"]["drvs"]["c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep2.drv"]["dynamicOutputs"] = {
        "cat": {"dynamicOutputs": {}, "outputs": ["kitten"]},
        "goose": {"dynamicOutputs": {}, "outputs": ["gosling"]},
    }
    for sample in (simple, dyn):
        drv = formats.parse_derivations({"x-s.drv": sample}, "sample", STORE)[f"{STORE}/x-s.drv"]
        assert drv.outputs == {}
        assert drv.input_drvs == {
            f"{STORE}/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep2.drv": ("cat", "dog")
        }
        assert drv.input_srcs == (f"{STORE}/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep1",)


def test_a_content_addressed_output_has_no_path_yet():
    doc = shape("objects")
    doc[full("topdrv")]["outputs"]["out"] = {"hashAlgo": "sha256", "method": "nar"}
    assert formats.parse_derivations(doc, "ca", STORE)[full("topdrv")].outputs == {"out": None}


@pytest.mark.parametrize(
    ("text", "lix", "release"),
    [
        ("nix (Nix) 2.8.0\n", False, (2, 8, 0)),
        ("nix (Nix) 2.33.0pre20251101_abc\n", False, (2, 33, 0)),
        ("nix (Lix, like Nix) 2.91.1\n", True, (2, 91, 1)),
        ("nix (Determinate Nix 3.6.0) 2.29.0\n", False, (2, 29, 0)),
    ],
)
def test_versions(text, lix, release):
    assert nix.parse_version(text) == nix.Version(lix, release)


def test_no_version_is_an_error():
    with pytest.raises(NixError, match="no version"):
        nix.parse_version("nix: command not found")


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_target_drv_sized_the_same_on_every_version(name, monkeypatch):
    """The `--target X.drv` pipeline behind a process gate that answers as that Nix does.
    Only glibc is in a cache; the rest is estimated. Every version must find all four
    runtime paths (an older reading of the 2.19 shape found the top-level path alone)."""
    version_text, verb, kind = VERSIONS[name]
    calls = []

    def run(argv, *, check=True, env=None, **_):
        argv = list(argv)
        calls.append(argv)
        if argv == ["nix", "--version"]:
            return SimpleNamespace(stdout=version_text, stderr="", returncode=0)
        if argv[3:-2] == verb and argv[-2] == "--recursive":
            return SimpleNamespace(stdout=json.dumps(shape(kind)), stderr="", returncode=0)
        raise AssertionError(f"unexpected command for Nix {name}: {argv}")

    nix.forget_versions()
    monkeypatch.setattr(process, "run", run)
    monkeypatch.setattr(nix, "store_dir", lambda: STORE)
    monkeypatch.setattr(nix, "invalid_paths", lambda paths: list(paths))
    glibc = PathInfo(full("glibc"), 30_000_000, ())

    def path_info(paths, *, recursive=True, store=None, known_only=False):
        return [glibc] if store and full("glibc") in paths else []

    monkeypatch.setattr(nix, "path_info", path_info)
    try:
        closure = estimate.closure_from_derivation(full("topdrv"), substituters=["file:///c"])
    finally:
        nix.forget_versions()
    assert sorted(closure) == sorted(full(k) for k in ("top", "sp", "hello", "glibc"))
    assert closure[full("glibc")].nar_size == 30_000_000
    assert not closure[full("glibc")].estimated and closure[full("hello")].estimated
    assert closure[full("hello")].references == (full("glibc"),)
    assert calls[0] == ["nix", "--version"] and calls[-1][3:-2] == verb


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("nix (Nix) 2.8.0", ["show-config", "--json"]),
        ("nix (Nix) 2.19.2", ["show-config", "--json"]),
        ("nix (Nix) 2.20.0", ["config", "show", "--json"]),
        ("nix (Lix, like Nix) 2.91.1", ["config", "show", "--json"]),
        ("nix (Lix, like Nix) 2.90.0", ["config", "show", "--json"]),
    ],
)
def test_config_verb(text, argv):
    assert nix.config_show_argv(nix.parse_version(text))[3:] == argv
