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
from pathlib import Path
from types import SimpleNamespace

import pytest

from adapters.cli import main
from adapters.nixstore import estimate, nix, process, versions
from adapters.nixstore.formats.derivation import Derivation, parse_derivations
from adapters.nixstore.formats.fixed_output import fixed_hash, nix32
from adapters.nixstore.formats.pathinfo import read_path_info_json
from adapters.nixstore.host import LOCAL
from solver.closure import Closure, PathInfo
from solver.errors import InputError, NixError

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
    expected = parse_derivations(shape("list"), "list", STORE)
    got = parse_derivations(shape(kind), kind, STORE)
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
        drv = parse_derivations({"x-s.drv": sample}, "sample", STORE)[f"{STORE}/x-s.drv"]
        assert drv.outputs == {}
        assert drv.input_drvs == {
            f"{STORE}/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep2.drv": ("cat", "dog")
        }
        assert drv.input_srcs == (f"{STORE}/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-dep1",)


def test_a_content_addressed_output_has_no_path_yet():
    doc = shape("objects")
    doc[full("topdrv")]["outputs"]["out"] = {"hashAlgo": "sha256", "method": "nar"}
    assert parse_derivations(doc, "ca", STORE)[full("topdrv")].outputs == {"out": None}


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
    assert versions.parse_version(text) == versions.Version(lix, release)


def test_no_version_is_an_error():
    with pytest.raises(NixError, match="no version"):
        versions.parse_version("nix: command not found")


@pytest.mark.parametrize("name", sorted(VERSIONS))
def test_target_drv_sized_the_same_on_every_version(name, monkeypatch, tmp_path):
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

    versions.forget_versions()
    monkeypatch.setattr(process, "run", run)
    monkeypatch.setenv("NIX_STORE_DIR", STORE)
    monkeypatch.setattr(nix, "invalid_paths", lambda host, paths: list(paths))
    glibc = PathInfo(full("glibc"), 30_000_000, ())

    def path_info(host, paths, *, recursive=True, store=None, known_only=False):
        return [glibc] if store and full("glibc") in paths else []

    monkeypatch.setattr(nix, "path_info", path_info)
    try:
        closure = estimate.closure_from_derivation(
            full("topdrv"), substituters=[f"file://{tmp_path}"]
        )
    finally:
        versions.forget_versions()
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
    assert versions.config_show_argv(versions.parse_version(text))[3:] == argv


# --- fixed outputs: their paths in every shape Nix has written -----------------------------

DATA = Path(__file__).with_name("data") / "derivations"
# tests/data/derivations/README.md says where each file comes from. The NixOS/nix samples
# of e65510da (2.25) still carry the path; the later ones only the hash: drv-name,
# output-name, sha256 894517c9…, flat, NAR and text.
EXPECTED = {
    "output-caFixedFlat": "/nix/store/rhcg9h16sqvlbpsa6dqm57sbr2al6nzg-drv-name-output-name",
    "output-caFixedNAR": "/nix/store/c015dhfh5l0lp6wxyvdn7bmwhbbr6hr9-drv-name-output-name",
    "output-caFixedText": "/nix/store/6s1zwabh956jvhv4w9xcdb5jiyanyxg1-drv-name-output-name",
}
SAMPLES = ["nix-e65510da", "nix-9d7229a2", "nix-0c37a622", "nix-bec3c5cf", "nix-61de9222"]


def one_output(spec: dict, env: dict | None = None) -> Derivation:
    doc = {"name": "drv-name", "outputs": {"output-name": spec}, "env": env or {}}
    return parse_derivations({"x-drv-name.drv": doc}, "sample", STORE)[f"{STORE}/x-drv-name.drv"]


@pytest.mark.parametrize("sample", [*SAMPLES, "lix-049cc4e1"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_fixed_output_path_from_nix_test_data(sample, kind):
    spec = json.loads((DATA / sample / f"{kind}.json").read_text())
    drv = one_output(spec)
    assert drv.outputs == {"output-name": EXPECTED[kind]}
    assert drv.fixed
    # Computed from the hash alone when the sample has the path too (Nix <= 2.31, Lix).
    spec.pop("path", None)
    assert one_output(spec).outputs == {"output-name": EXPECTED[kind]}


def test_fixed_output_path_from_its_environment_variable():
    """Nix 2.32 on leaves the path out, and names it in the output's variable; a
    placeholder there (a floating output's `/1rz4g4…`) is not a path."""
    spec = json.loads((DATA / "nix-61de9222" / "output-caFixedFlat.json").read_text())
    elsewhere = f"{STORE}/{'a' * 32}-drv-name-output-name"
    assert one_output(spec, {"output-name": elsewhere}).outputs["output-name"] == elsewhere
    floating = json.loads((DATA / "nix-61de9222" / "output-caFloating.json").read_text())
    placeholder = {"output-name": "/1rz4g4znpzjwh1xymhjpm42vipw92pr73vdgl6xs1hycac8kf2n9"}
    drv = one_output(floating, placeholder)
    assert drv.outputs == {"output-name": None} and not drv.fixed


@pytest.mark.parametrize(
    "spec",
    [
        {"hash": "sha256-bad", "method": "flat"},
        {"hash": "00ff", "hashAlgo": "sha256", "method": "flat"},
        {"hash": "894517c9163c896ec31a2adbd33c0681fd5f45b2c0ef08a64c92a03fb97f390f"},
        {"hash": {"algorithm": "sha3", "format": "base16", "hash": "00"}, "method": "flat"},
        {"hash": "sha256-iUUXyRY8iW7DGirb0zwGgf1fRbLA7wimTJKgP7l/OQ8=", "method": "zip"},
    ],
    ids=["short-sri", "short-hex", "no-algorithm", "unknown-algorithm", "unknown-method"],
)
def test_unreadable_fixed_output_hash_is_named(spec):
    with pytest.raises(InputError, match="output output-name"):
        one_output(spec)


def test_nix32_both_ways():
    """Real Nix 2.8 path-info's ca of the test target's fixed output (nix32) is the hash
    its derivation has in hex."""
    built = json.loads((DATA / "real" / "new-closure.json").read_text())
    blob = next(e for e in built if e["path"].endswith("-blob.bin"))
    written = blob["ca"].rpartition(":")[2]
    drvs = json.loads((DATA / "real" / "nix-2.8.0.json").read_text())
    hex_hash = next(v["env"]["outputHash"] for v in drvs.values() if v["env"]["name"] == "blob.bin")
    assert nix32(bytes.fromhex(hex_hash)) == written
    assert fixed_hash({"hash": written, "hashAlgo": "sha256"}, "x")[2].hex() == hex_hash


# --- real Nix output of the test target (tests/data/derivations/target.nix) ----------------

REAL_STORE = "/tmp/budget-solve-real/store"
REAL = ["nix-2.8.0", "nix-2.34.8"]


def real(name: str, *, without_env_paths: bool = False) -> dict[str, Derivation]:
    data = json.loads((DATA / "real" / f"{name}.json").read_text())
    if without_env_paths:  # as Nix's own test data: the hash alone
        for doc in data.get("derivations", data).values():
            if "hash" in doc["outputs"]["out"]:
                doc["env"].pop("out")
    return parse_derivations(data, name, REAL_STORE)


def real_closure(name: str) -> Closure:
    return read_path_info_json((DATA / "real" / name).read_text(), name)


def by_name(drvs: dict[str, Derivation], name: str) -> Derivation:
    return next(d for p, d in drvs.items() if p.endswith(f"-{name}.drv"))


@pytest.mark.parametrize("without_env_paths", [False, True], ids=["env", "hash"])
@pytest.mark.parametrize("name", REAL)
def test_real_derivations_read_alike(name, without_env_paths):
    """Nix 2.8 gives the fixed output's path; 2.34 only its hash and variable."""
    drvs = real(name, without_env_paths=without_env_paths)
    assert drvs == real("nix-2.8.0")
    built = real_closure("new-closure.json")
    blob = by_name(drvs, "blob.bin")
    assert blob.fixed and blob.outputs["out"] in built
    assert all(out in built for d in drvs.values() for out in d.outputs.values())
    # registry.json names the source in the environment; the top-level runs glue.sh.
    source = next(p for p in built if p.endswith("-source"))
    assert by_name(drvs, "etc").named_srcs == (source,)
    top = by_name(drvs, "nixos-system-box-2")
    assert top.input_srcs[0].endswith("-glue.sh") and top.named_srcs == ()


@pytest.fixture
def nothing_known(monkeypatch):
    """No path in the local store, and every cache asked answers that it has none."""
    asked: list[str | None] = []

    def path_info(host, paths, *, recursive=True, store=None, known_only=False):
        asked.append(store)
        return []

    monkeypatch.setattr(nix, "invalid_paths", lambda host, paths: list(paths))
    monkeypatch.setattr(nix, "path_info", path_info)
    return asked


@pytest.mark.parametrize("without_env_paths", [False, True], ids=["env", "hash"])
@pytest.mark.parametrize("name", REAL)
def test_real_target_sized_within_half_a_percent(name, without_env_paths, nothing_known):
    """Nothing of the new system is anywhere: every path is estimated from the old
    system's (a changed fetched file, a changed source tree, the glue, the package), and
    the closure is the built one's, within 0.5 % of its size. Before, the fixed output of
    Nix 2.34's JSON had no path and the source no reference: 8.3 % low."""
    drvs = real(name, without_env_paths=without_env_paths)
    top = next(p for p in drvs if p.endswith("-nixos-system-box-2.drv"))
    truth = real_closure("new-closure.json")
    sized = estimate.closure_from_derivation(top, like=real_closure("old-closure.json"), drvs=drvs)
    assert set(sized) == set(truth)
    assert all(info.estimated for info in sized.infos())
    assert abs(sized.size() - truth.size()) <= 0.005 * truth.size()
    for path in truth:
        assert set(sized[path].references) == set(truth[path].references) - {path}


# --- caches that cannot be reached ---------------------------------------------------------

REFUSED = (
    "nix --extra-experimental-features nix-command path-info --json --store "
    "http://127.0.0.1:9/ /nix/store/x failed with exit code 1: unable to download "
    "'http://127.0.0.1:9/nix-cache-info': Couldn't connect to server (7)"
)


@pytest.mark.parametrize(
    ("message", "unreachable"),
    [
        (REFUSED, True),
        ("... failed with exit code 1: unable to download 'https://c/nix-cache-info': "
         "Could not resolve hostname (6) Could not resolve host: c", True),
        ("... failed with exit code 1: unable to download 'https://c/x.narinfo': "
         "Timeout was reached (28)", True),
        ("... failed with exit code 1: binary cache 'file:///c' is for Nix stores with "
         "prefix '/a', not '/nix/store'", False),
    ],
    ids=["refused", "no-such-host", "timeout", "wrong-store-dir"],
)  # fmt: skip
def test_unreachable_cache_is_its_own_error(message, unreachable, monkeypatch):
    def run(argv, *, check=True, **_):
        if argv == ["nix", "--version"]:
            return SimpleNamespace(stdout="nix (Nix) 2.34.8", stderr="", returncode=0)
        raise NixError(message)

    versions.forget_versions()
    monkeypatch.setattr(process, "run", run)
    try:
        with pytest.raises(NixError) as e:
            nix.path_info(LOCAL, [full("glibc")], recursive=False, store="http://127.0.0.1:9/")
    finally:
        versions.forget_versions()
    assert isinstance(e.value, nix.CacheUnreachableError) == unreachable
    if unreachable:
        assert str(e.value).startswith("unable to download")


@pytest.fixture
def caches(monkeypatch, tmp_path):
    """Nothing is in the local store; `down` cannot be reached, `good` has glibc, and
    `missing` is a file:// cache whose directory does not exist. What each is asked is
    recorded."""
    good = tmp_path / "good"
    good.mkdir()
    urls = {
        "down": "http://127.0.0.1:9/",
        "good": f"file://{good}",
        "missing": f"file://{tmp_path / 'none'}",
    }
    asked: list[str] = []

    def path_info(host, paths, *, recursive=True, store=None, known_only=False):
        if store is None:
            return []
        asked.append(store)
        if store == urls["down"]:
            raise nix.CacheUnreachableError(REFUSED.partition(": ")[2])
        if store == urls["good"]:
            return [PathInfo(full("glibc"), 30_000_000)] if full("glibc") in paths else []
        raise AssertionError(f"asked {store}")

    monkeypatch.setenv("NIX_STORE_DIR", STORE)
    monkeypatch.setattr(nix, "invalid_paths", lambda host, paths: list(paths))
    monkeypatch.setattr(nix, "path_info", path_info)
    monkeypatch.setattr(nix, "configured_substituters", lambda host: pytest.fail("nix.conf read"))
    return SimpleNamespace(urls=urls, asked=asked, missing=tmp_path / "none")


def test_an_unreachable_cache_is_skipped_and_reported(caches):
    urls = caches.urls
    drvs = parse_derivations(shape("v4"), "v4", STORE)
    with estimate.sizing_report() as report:
        closure = estimate.closure_from_derivation(
            full("topdrv"), substituters=[urls["down"], urls["missing"], urls["good"]], drvs=drvs
        )
    assert sorted(closure) == sorted(full(k) for k in ("top", "sp", "hello", "glibc"))
    assert not closure[full("glibc")].estimated
    assert list(report.unreachable) == [urls["down"], urls["missing"]]
    assert report.unreachable[urls["down"]].startswith("unable to download")
    assert "no such directory" in report.unreachable[urls["missing"]]
    # Asked once, not once per level of the closure; Nix is never asked of a cache that
    # does not exist (it would make the directory).
    assert caches.asked.count(urls["down"]) == 1 and urls["missing"] not in caches.asked
    assert not caches.missing.exists()


def test_an_unreachable_cache_is_a_warning_outside_a_report(caches, caplog):
    drvs = parse_derivations(shape("v4"), "v4", STORE)
    estimate.closure_from_derivation(full("topdrv"), substituters=[caches.urls["down"]], drvs=drvs)
    assert "cache http://127.0.0.1:9/ unreachable, its paths estimated" in caplog.text


def test_offline_asks_no_cache(caches, tmp_path):
    saved = tmp_path / "target.json"
    saved.write_text(json.dumps(shape("v4")))
    closure, drv = estimate.read_target(str(saved), offline=True)
    assert drv == full("topdrv") and caches.asked == []
    assert all(info.estimated for info in closure.infos())


def test_offline_store_path_not_here_is_refused(caches, monkeypatch):
    monkeypatch.setattr(nix, "is_store_path", lambda host, path: True)
    with pytest.raises(InputError, match="--offline"):
        estimate.read_target(full("top"), offline=True)


def test_store_path_target_past_an_unreachable_cache(caches, monkeypatch):
    monkeypatch.setattr(nix, "is_store_path", lambda host, path: True)

    def closure(host, path, store=None):
        if store == caches.urls["down"]:
            raise nix.CacheUnreachableError("unable to download: refused")
        return Closure([PathInfo(path, 5)], [path])

    monkeypatch.setattr(nix, "closure", closure)
    with estimate.sizing_report() as report:
        closure, _ = estimate.read_target(
            full("top"), substituters=[caches.urls["down"], caches.urls["good"]]
        )
    assert list(closure) == [full("top")] and list(report.unreachable) == [caches.urls["down"]]


# --- plan: --offline, --substituter, and what the verdict says is estimated ------------------


def plan(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["plan", "--quiet", "--limit", "1G", *argv])
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


@pytest.fixture
def real_target(tmp_path, monkeypatch, nothing_known):
    """The recorded Nix 2.34 derivations of the test target, the old system's closure as
    a saved path-info file, and a store that has neither."""
    monkeypatch.setenv("NIX_STORE_DIR", REAL_STORE)
    current = tmp_path / "current.json"
    current.write_text((DATA / "real" / "old-closure.json").read_text())
    target = DATA / "real" / "nix-2.34.8.json"
    return ["--current", str(current), "--target", str(target)]


def test_plan_json_says_what_is_estimated(real_target, nothing_known, capsys):
    code, out, err = plan([*real_target, "--offline", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    truth = real_closure("new-closure.json")
    # The whole new system is new: every path of it an estimate, within 0.5 % of the truth.
    assert doc["estimated_paths"] == doc["target_paths"] == len(truth)
    assert doc["estimated_bytes"] == doc["target_bytes"]
    assert abs(doc["target_bytes"] - truth.size()) <= 0.005 * truth.size()
    assert doc["unreachable_caches"] == []
    assert nothing_known == [None] * len(nothing_known)  # the local store alone


def test_plan_verdict_names_unreachable_caches(real_target, tmp_path, capsys, monkeypatch):
    def path_info(host, paths, *, recursive=True, store=None, known_only=False):
        if store == "http://127.0.0.1:9/":
            raise nix.CacheUnreachableError(
                "unable to download 'http://127.0.0.1:9/nix-cache-info'"
            )
        return []

    monkeypatch.setattr(nix, "path_info", path_info)
    missing = f"file://{tmp_path / 'no-cache'}"
    argv = [*real_target, "--substituter", "http://127.0.0.1:9/", "--substituter", missing]
    code, out, err = plan(argv, capsys)
    assert code == 0, err
    # Right above the verdict, which stays the last line.
    lines = out.splitlines()
    assert lines[-4].startswith("estimated: 5 of the target's 5 paths (20.8 MiB of 20.8 MiB)")
    assert lines[-3] == (
        "cache http://127.0.0.1:9/ unreachable: its paths were estimated (unable to download "
        "'http://127.0.0.1:9/nix-cache-info')"
    )
    assert lines[-2].startswith(f"cache {missing} unreachable: its paths were estimated (")
    assert lines[-1].startswith("plan: 1 step")
    code, out, _ = plan([*argv, "--json"], capsys)
    assert [c["url"] for c in json.loads(out)["unreachable_caches"]] == [
        "http://127.0.0.1:9/",
        missing,
    ]


def test_plan_offline_with_a_cache_is_a_usage_error(real_target, capsys):
    code, _, err = plan([*real_target, "--offline", "--substituter", "file:///c"], capsys)
    assert code == 2 and "--offline asks no cache" in err
