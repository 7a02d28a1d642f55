"""The stand-in Nix (tests/standin_nix.py, as tests/test_nix_versions.py sets it up) against
the real Nix it plays: each call of the tool that it imitates, run on both, their outputs
compared by shape (the same JSON shape and keys, the same verbs accepted, refused or
warned about, the same version line and the same kind of lines from nix-store). A real
release is played by the newest stand-in version at or below it: 2.8 by "2.8", 2.26 by
"2.24", 2.34 by "2.33"."""

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.nixstore import versions
from adapters.nixstore.formats.derivation import parse_derivations
from adapters.nixstore.formats.pathinfo import parse_path_info
from tests.e2e.versions import Nix
from tests.test_derivations import VERSIONS, full
from tests.test_nix_versions import standin_script, write_standin

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

# The stand-in's graph, built for real: top -> system-path -> hello -> glibc, each
# derivation with one output and one input source, a builder script.
EXPR = r"""
let
  mk = name: deps: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ ./builder.sh ];
    deps = map toString deps;
  };
  glibc = mk "glibc-2.40" [];
  hello = mk "hello-2.12" [ glibc ];
  sp = mk "system-path" [ hello ];
in { inherit glibc hello; top = mk "nixos-system-box-24.11" [ sp ]; }
"""
BUILDER = "PATH=/usr/bin:/bin; echo $deps > $out; head -c 1000 /dev/zero >> $out\n"
HASH = re.compile(r"(^|/)[0-9a-df-np-sv-z]{32}-[^/]+$")
VERSION_LINE = re.compile(r"^nix \(Nix\) \d+\.\d+\.\d+\n$")


def played_by(real: Nix) -> str:
    """The stand-in version that plays `real`: the newest Nix one at or below it."""
    candidates = [
        name
        for name, (line, _verb, _kind) in VERSIONS.items()
        if "Lix" not in line and versions.parse_version(line).release <= real.key
    ]
    return max(candidates, key=lambda name: versions.parse_version(VERSIONS[name][0]).release)


@dataclass(frozen=True)
class Answer:
    code: int
    out: str
    err: str

    @property
    def warnings(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("warning:")]

    @property
    def first_error(self) -> str:
        return next((line for line in self.err.splitlines() if line.startswith("error:")), "")


@dataclass(frozen=True)
class Pair:
    """The real Nix in a throwaway store with the graph, and the stand-in playing it."""

    real: Nix
    played: str
    top_drv: str
    glibc: str
    cache: str
    standin_env: dict[str, str]

    def on_real(self, *argv: str) -> Answer:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return Answer(done.returncode, done.stdout, done.stderr)

    def on_standin(self, *argv: str) -> Answer:
        done = subprocess.run(
            [str(Path(self.standin_env["BIN"]) / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            check=False,
            env=self.standin_env,
        )
        return Answer(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def pair(nix_store, tmp_path) -> Pair:
    nix_store.write("builder.sh", BUILDER)
    expr = nix_store.write("graph.nix", EXPR)
    top_drv = nix_store.run("nix-instantiate", str(expr), "-A", "top").strip()
    glibc = nix_store.run("nix-build", str(expr), "-A", "glibc", "--no-out-link").strip()
    cache = f"file://{tmp_path / 'cache'}"
    nix_store.run(*versions.NIX, "copy", "--to", cache, glibc)
    played = played_by(nix_store.nix)
    where = tmp_path / "standin"
    where.mkdir()
    bin_dir = write_standin(standin_script(played, where), where)
    env = {"BUDGET_SOLVE_STANDIN": str(where / "script.json"), "BIN": str(bin_dir)}
    return Pair(nix_store.nix, played, top_drv, glibc, cache, env)


def shape(value: object) -> object:
    """A JSON value with its data taken out: objects keyed by store paths (full or base
    names) become one entry per shape of their values, other objects keep their keys,
    lists the set of their elements' shapes, scalars (null too) just "scalar"."""
    if isinstance(value, dict):
        if value and all(HASH.search(k) for k in value):
            return {"<path>": _shapes(value.values())}
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return _shapes(value)
    return "scalar"


def _shapes(values) -> list[object]:
    seen = {json.dumps(shape(v), sort_keys=True) for v in values}
    return [json.loads(s) for s in sorted(seen)]


def derivation_shape(doc: object) -> object:
    """`derivation show` output's shape, without what each builder's environment and
    arguments hold (ours differ from the stand-in's in number, not in kind)."""

    def strip(record: dict) -> dict:
        return {**record, "env": {}, "args": []}

    if isinstance(doc, dict) and "derivations" in doc:
        doc = {**doc, "derivations": {k: strip(v) for k, v in doc["derivations"].items()}}
    elif isinstance(doc, dict):
        doc = {k: strip(v) for k, v in doc.items()}
    return shape(doc)


def test_version_line(pair):
    real, standin = pair.on_real("nix", "--version"), pair.on_standin("nix", "--version")
    assert VERSION_LINE.match(real.out) and VERSION_LINE.match(standin.out), (real, standin)
    # Read alike: a Nix, not Lix, in the stand-in's range of releases.
    assert not versions.parse_version(real.out).lix and not versions.parse_version(standin.out).lix
    assert played_by(pair.real) == pair.played


@pytest.mark.parametrize(
    "verb", ["show-derivation", "derivation show", "show-config", "config show"]
)
def test_verbs_are_accepted_refused_and_warned_about_alike(pair, verb):
    args = ["--recursive", pair.top_drv] if "deriv" in verb else ["--json"]
    real = pair.on_real(*versions.NIX, *verb.split(), *args)
    standin = pair.on_standin(*versions.NIX, *verb.split(), *args)
    said = f"real Nix {pair.real.release} and the stand-in playing {pair.played}"
    assert (real.code == 0) == (standin.code == 0), (said, real, standin)
    assert real.warnings == standin.warnings, said
    assert real.first_error == standin.first_error, said


def test_derivation_show_has_the_shape_of_the_real_one(pair):
    argv = versions.show_derivation_argv(
        versions.parse_version(pair.on_real("nix", "--version").out), ""
    )
    real = pair.on_real(*argv[:-1], pair.top_drv)
    standin = pair.on_standin(*argv[:-1], full("topdrv"))
    assert real.code == 0 and standin.code == 0, (real, standin)
    assert derivation_shape(json.loads(standin.out)) == derivation_shape(json.loads(real.out))
    assert real.warnings == standin.warnings == []
    # The tool reads both to the same four derivations, each with its output and source.
    for answer, store in ((real, str(nix_store_dir(pair.glibc))), (standin, "/nix/store")):
        drvs = parse_derivations(json.loads(answer.out), "derivation show", store)
        assert len(drvs) == 4
        assert all(len(d.outputs) == 1 and len(d.input_srcs) == 1 for d in drvs.values())


def nix_store_dir(path: str) -> Path:
    return Path(path).parent


def test_config_show_has_the_shape_of_the_real_one(pair):
    argv = versions.config_show_argv(versions.parse_version(pair.on_real("nix", "--version").out))
    real, standin = pair.on_real(*argv), pair.on_standin(*argv)
    assert real.code == 0 and standin.code == 0, (real, standin)
    assert real.warnings == standin.warnings == []
    real_doc, standin_doc = json.loads(real.out), json.loads(standin.out)
    # The stand-in names one setting, the one the tool reads, as real Nix has it.
    assert list(standin_doc) == ["substituters"]
    assert shape(standin_doc["substituters"]) == shape(real_doc["substituters"])


@pytest.mark.parametrize("ask_format", [True, False], ids=["as-the-tool-asks", "bare-json"])
def test_path_info_from_a_cache_has_the_shape_of_the_real_one(pair, ask_format):
    """What the tool asks a cache (`nix path-info --json [--json-format 1] --store URL`),
    for a path it has and one it has not."""
    v = versions.parse_version(pair.on_real("nix", "--version").out)
    flags = versions.json_format(v) if ask_format else []
    argv = [*versions.NIX, "path-info", "--json", *flags, "--store", pair.cache]
    missing = str(nix_store_dir(pair.glibc) / ("0" * 32 + "-missing-1.0"))
    real = pair.on_real(*argv, pair.glibc, missing)
    standin = pair.on_standin(*argv, full("glibc"), "/nix/store/" + "0" * 32 + "-missing-1.0")
    assert real.code == 0 and standin.code == 0, (real, standin)
    assert shape(json.loads(standin.out)) == shape(json.loads(real.out))
    assert real.warnings == standin.warnings
    assert "don't know how to build these paths:" in real.err.splitlines()
    assert "don't know how to build these paths:" in standin.err.splitlines()
    # The tool reads one path from each, the one the cache has.
    for answer in (real, standin):
        infos = parse_path_info(json.loads(answer.out), "path-info", known_only=True)
        assert len(infos) == 1 and infos[0].nar_size > 0


def test_json_format_is_accepted_or_refused_alike(pair):
    argv = [*versions.NIX, "path-info", "--json", "--json-format", "1", "--store", pair.cache]
    real = pair.on_real(*argv, pair.glibc)
    standin = pair.on_standin(*argv, full("glibc"))
    assert (real.code == 0) == (standin.code == 0), (real, standin)
    assert real.first_error == standin.first_error


def test_nix_store_queries_print_one_store_path_a_line(pair):
    """`nix-store --check-validity --print-invalid` and `--query --outputs`, as the tool
    reads them. (The stand-in has nothing built: every path but a derivation is invalid.)"""
    missing = str(nix_store_dir(pair.glibc) / ("0" * 32 + "-missing-1.0"))
    real = pair.on_real("nix-store", "--check-validity", "--print-invalid", pair.glibc, missing)
    standin = pair.on_standin("nix-store", "--check-validity", "--print-invalid", full("glibc"))
    assert real.code == standin.code == 0
    assert real.out == f"{missing}\n" and standin.out == f"{full('glibc')}\n"
    real = pair.on_real("nix-store", "--query", "--outputs", pair.top_drv)
    standin = pair.on_standin("nix-store", "--query", "--outputs", full("topdrv"))
    assert real.code == standin.code == 0
    for answer in (real, standin):
        (line,) = answer.out.splitlines()
        assert HASH.search(line) and line.startswith("/")
