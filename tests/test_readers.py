"""Readers: every input shape Nix writes, and every bad input, named in one line."""

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from adapters.nixstore import nix, sources
from adapters.nixstore.formats.graph import read_closure_graph
from adapters.nixstore.formats.narinfo import read_narinfo
from adapters.nixstore.formats.pathinfo import (
    dump_path_info_json,
    parse_path_info,
    read_path_info_json,
)
from adapters.nixstore.formats.registration import read_registration
from solver.closure import Closure, PathInfo
from solver.errors import ClosureError, InputError
from solver.synthetic import generate_system
from tests.helpers import STORE, fake_path

GLIBC = fake_path("glibc-2.39-52")
LIBFOO = fake_path("libfoo-1.0")
APP = fake_path("app-3.1")
APP_DRV = fake_path("app-3.1.drv")
OTHER = fake_path("other-0.1")

SIZES = {GLIBC: 30_000_000, LIBFOO: 100_120, APP: 5_000}
REFS = {GLIBC: (), LIBFOO: (GLIBC,), APP: (GLIBC, LIBFOO)}


def base(path: str) -> str:
    return path.rpartition("/")[2]


def name_of(path: str) -> str:
    return base(path).partition("-")[2]


def summary(closure: Closure) -> dict[str, tuple[int, tuple[str, ...]]]:
    return {i.path: (i.nar_size, tuple(sorted(i.references))) for i in closure.infos()}


EXPECTED = {p: (SIZES[p], tuple(sorted(REFS[p]))) for p in SIZES}


def sample() -> Closure:
    return Closure(
        [
            PathInfo(GLIBC, SIZES[GLIBC]),
            PathInfo(LIBFOO, SIZES[LIBFOO], (GLIBC,)),
            PathInfo(APP, SIZES[APP], (GLIBC, LIBFOO, APP), APP_DRV),
        ],
        source="sample",
    )


# --- nix path-info --json, in every shape -------------------------------------------------

LIST_SHAPE = [  # Nix <= 2.18 and Lix; self-references included, absent fields left out
    {"path": GLIBC, "narHash": "sha256-x", "narSize": SIZES[GLIBC], "references": [],
     "registrationTime": 1, "valid": True},
    {"path": LIBFOO, "narHash": "sha256-x", "narSize": SIZES[LIBFOO], "references": [GLIBC]},
    {"path": APP, "narHash": "sha256-x", "narSize": SIZES[APP], "references": [APP, GLIBC, LIBFOO],
     "deriver": APP_DRV, "closureSize": 30_105_120, "signatures": ["cache.nixos.org-1:abc"]},
]  # fmt: skip
OBJECT_SHAPE = {  # Nix 2.19+; 2.23+ writes absent fields as null
    GLIBC: {"narHash": "sha256-x", "narSize": SIZES[GLIBC], "references": [], "deriver": None,
            "ca": None, "registrationTime": None, "signatures": []},
    LIBFOO: {"narHash": "sha256-x", "narSize": SIZES[LIBFOO], "references": [GLIBC],
             "deriver": None, "ca": None},
    APP: {"narHash": "sha256-x", "narSize": SIZES[APP], "references": [GLIBC, LIBFOO, APP],
          "deriver": APP_DRV, "ultimate": True},
}  # fmt: skip
V2_SHAPE = {  # Nix 2.33 --json-format 2: base names everywhere
    "version": 2,
    "storeDir": STORE,
    "info": {
        base(GLIBC): {"version": 2, "storeDir": STORE, "narSize": SIZES[GLIBC],
                      "references": [], "ca": None, "deriver": None, "narHash": "sha256-x"},
        base(LIBFOO): {"version": 2, "storeDir": STORE, "narSize": SIZES[LIBFOO],
                       "references": [base(GLIBC)], "ca": None, "deriver": None},
        base(APP): {"version": 2, "storeDir": STORE, "narSize": SIZES[APP],
                    "references": [base(APP), base(GLIBC), base(LIBFOO)],
                    "ca": {"method": "nar", "hash": "sha256-x"}, "deriver": base(APP_DRV)},
    },
}  # fmt: skip
V3_SHAPE = {  # Nix 2.35 --json-format 3: version 2 with structured signatures
    "version": 3,
    "storeDir": STORE,
    "info": {
        base(path): {**entry, "version": 3,
                     "signatures": [{"keyName": "cache.nixos.org-1", "sig": "c2ln"}]}
        for path, entry in V2_SHAPE["info"].items()
    },
}  # fmt: skip
V1_WRAPPED = {"version": 1, "storeDir": STORE, "info": OBJECT_SHAPE}
OBJECT_WITH_STORE_DIR = {"storeDir": STORE, **OBJECT_SHAPE}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(LIST_SHAPE, id="list-nix-2.18"),
        pytest.param(OBJECT_SHAPE, id="object-nix-2.19"),
        pytest.param(OBJECT_WITH_STORE_DIR, id="object-with-storeDir"),
        pytest.param(V2_SHAPE, id="v2-nix-2.33"),
        pytest.param(V3_SHAPE, id="v3-nix-2.35"),
        pytest.param(V1_WRAPPED, id="v1-wrapped"),
        pytest.param({"closure": LIST_SHAPE}, id="exportReferencesGraph-closure"),
        pytest.param({"graph": LIST_SHAPE}, id="exportReferencesGraph-graph"),
    ],
)
@pytest.mark.parametrize("as_text", [True, False], ids=["text", "parsed"])
def test_path_info_shapes(data, as_text):
    closure = read_path_info_json(json.dumps(data) if as_text else data, "pi.json")
    assert summary(closure) == EXPECTED
    assert closure.roots == (APP,)
    assert closure[APP].deriver == APP_DRV
    assert closure[GLIBC].deriver is None
    assert closure.size() == sum(SIZES.values())
    assert not any(i.estimated for i in closure.infos())


def test_real_nix2container_sample(real_data):
    text = (real_data / "nlewo-nix2container_data_closure-graph.json").read_bytes()
    closure = read_path_info_json(text, "nlewo.json")
    assert len(closure) == 5
    assert sorted(name_of(r) for r in closure.roots) == ["bash-5.1-p12", "hello-2.10"]
    by_name = {name_of(p): closure[p] for p in closure}
    assert by_name["hello-2.10"].nar_size == 206104
    # The file's own closureSize of hello-2.10, recomputed from narSize and references.
    hello = next(p for p in closure if p.endswith("hello-2.10"))
    assert closure.size(closure.reachable([hello])) == 33344800
    assert all(p not in closure[p].references for p in closure)  # self-references dropped


P = GLIBC
NOT_VALID = f"not valid in the store (not built?): {P}"


def one(**fields: object) -> str:
    """Object-shaped path-info JSON for P alone, with `fields` over a valid entry."""
    return json.dumps({P: {"narSize": 1, "references": [], **fields}})


BAD_PATH_INFO = [
    ("[", InputError, "malformed JSON at line 1"),
    (f'[\n  {{"path": "{P}",\n   "narSize": }}\n]', InputError, "malformed JSON at line 3"),
    ("42", InputError, "expected a JSON list or object"),
    ('["x"]', InputError, "entry 0 is not an object"),
    ('[{"narSize": 1}]', InputError, "entry 0 has no path"),
    (json.dumps([{"path": "/nix/store/short-x", "narSize": 1, "references": []}]),
     ClosureError, "not a store path"),
    (json.dumps([{"path": P, "valid": False}]), ClosureError, NOT_VALID),
    (json.dumps({P: None}), ClosureError, NOT_VALID),
    (json.dumps({**V2_SHAPE, "info": {base(P): None}}), ClosureError, NOT_VALID),
    (json.dumps([{"path": P, "references": []}]), ClosureError, f"{P} has no narSize"),
    (one(narSize=None), ClosureError, f"{P} has no narSize"),
    (one(narSize=-1), ClosureError, "negative narSize"),
    (one(narSize=1.5), ClosureError, "non-integer narSize (1.5)"),
    (one(narSize="100"), ClosureError, "non-integer narSize ('100')"),
    (one(narSize=True), ClosureError, "non-integer narSize"),
    (one(narSize=1 << 41), ClosureError, "absurd narSize"),
    (json.dumps({P: {"narSize": 1}}), ClosureError, f"{P} has no list of references"),
    (one(references=[LIBFOO]), ClosureError, f"{LIBFOO} referenced but not listed: saved without"),
    (json.dumps([{"path": P, "narSize": n, "references": []} for n in (1, 2)]),
     ClosureError, "listed twice with different sizes"),
    (json.dumps({"glibc": {"narSize": 1}}), InputError, "unexpected key 'glibc'"),
    (json.dumps({"version": 4, "storeDir": STORE, "info": {}}),
     InputError, "unsupported path-info JSON version 4"),
    (json.dumps({"version": 2, "info": {}}), InputError, "needs a storeDir"),
    (json.dumps({"version": 2, "storeDir": STORE}), InputError, "has no info object"),
    (one(deriver=7), ClosureError, "deriver that is not a string"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "error", "message"), BAD_PATH_INFO)
def test_path_info_bad_input(text, error, message):
    with pytest.raises(error) as caught:
        read_path_info_json(text, "saved.json")
    text_of_error = str(caught.value)
    assert message in text_of_error
    assert text_of_error.startswith("saved.json")
    assert "\n" not in text_of_error


PATH_INFO_DATA = Path(__file__).with_name("data") / "path-info" / "nix-88b09c64"


@pytest.mark.parametrize(
    "sample",
    ["path-info-json-3-pure", "path-info-json-3-impure", "nar-info-json-3-impure"],
)
def test_nix_json_format_3_samples(sample):
    """NixOS/nix src/libstore-tests/data/{path,nar}-info/json-3/ (tests/data/derivations/
    README.md), each as the info of one path in what `nix path-info --json-format 3`
    prints (src/nix/path-info.cc: version, storeDir, info keyed by base name)."""
    entry = json.loads((PATH_INFO_DATA / f"{sample}.json").read_text())
    path = f"{STORE}/{'0' * 32}-app"
    data = {"version": 3, "storeDir": STORE, "info": {base(path): entry}}
    [info] = parse_path_info(data, sample)
    assert info.path == path and info.nar_size == 34878
    assert info.references == (
        f"{STORE}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar",
        f"{STORE}/n5wkd9frr45pa74if5gpz9j7mifg27fh-foo",
    )
    assert info.deriver == (
        f"{STORE}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-bar.drv" if "impure" in sample else None
    )


def test_many_invalid_paths_are_counted_not_all_listed():
    paths = [fake_path(f"p{i}-1.0") for i in range(10)]
    with pytest.raises(ClosureError, match="and 7 more"):
        read_path_info_json(json.dumps(dict.fromkeys(paths)), "x.json")


def test_parse_path_info_keeps_references_outside_the_list():
    # Non-recursive path-info: references point outside; no Closure check applies.
    infos = parse_path_info({APP: OBJECT_SHAPE[APP]}, "nix path-info")
    assert infos == [PathInfo(APP, SIZES[APP], (GLIBC, LIBFOO, APP), APP_DRV)]


# --- writing ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["list", "2.19", "v2"])
def test_dump_round_trips(shape):
    estimated = PathInfo(OTHER, 77, (GLIBC,), estimated=True)
    closure = Closure([*sample().infos(), estimated], source="s")
    text = dump_path_info_json(closure, shape)
    back = read_path_info_json(text, "dumped.json")
    assert summary(back) == summary(closure)
    assert back[APP].deriver == APP_DRV
    assert back[OTHER].estimated
    assert not back[GLIBC].estimated
    assert set(back.roots) == {APP, OTHER}


def test_dump_shapes_look_like_nix():
    closure = sample()
    as_list = json.loads(dump_path_info_json(closure, "list"))
    assert isinstance(as_list, list)
    assert "deriver" not in next(e for e in as_list if e["path"] == GLIBC)
    as_object = json.loads(dump_path_info_json(closure, "2.19"))
    assert as_object[GLIBC]["deriver"] is None
    v2 = json.loads(dump_path_info_json(closure, "v2"))
    assert v2["version"] == 2
    assert v2["storeDir"] == STORE
    assert v2["info"][base(APP)]["references"] == sorted([base(GLIBC), base(LIBFOO)])
    assert v2["info"][base(APP)]["deriver"] == base(APP_DRV)


def test_dump_unknown_shape():
    with pytest.raises(InputError, match="unknown path-info JSON shape"):
        dump_path_info_json(sample(), "2.99")  # type: ignore[arg-type]


# --- nix-closure-graph --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("human", "size"),
    [
        ("304 bytes", 304),
        ("1 bytes", 1),
        ("1.3 KiB", 1331),
        ("1004 KiB", 1004 * 1024),
        ("64.5 MiB", 67_633_152),
        ("5.8 GiB", 6_227_702_579),
        (4096, 4096),
    ],
)
def test_closure_graph_sizes(human, size):
    graph = {"nodes": {P: {"props": {"path": P, "narSize": human}}}, "edges": []}
    closure = read_closure_graph(graph, "g.json")
    assert closure[P].nar_size == size
    assert not closure[P].estimated


def graph_of(nodes, edges):
    return {
        "title": "t",
        "nodes": {p: {"label": p[-6:], "weight": 0, "props": {"narSize": s}} for p, s in nodes},
        "edges": [{"from": a, "to": b} for a, b in edges],
    }


BAD_GRAPHS = [
    (graph_of([(P, "lots")], []), ClosureError, f"{P} has an unreadable narSize 'lots'"),
    (graph_of([(P, None)], []), ClosureError, f"{P} has no narSize"),
    (graph_of([(P, -3)], []), ClosureError, "negative narSize"),
    (graph_of([(P, "1 bytes")], [(P, LIBFOO)]), ClosureError, "which is not in the closure"),
    (graph_of([(P, "1 bytes")], [(LIBFOO, P)]), ClosureError, "edge 0 starts at"),
    ({"nodes": {P: {"label": "x"}}, "edges": []}, InputError, f"node {P} has no props"),
    ({"nodes": {P: {"props": {"narSize": 1}}}, "edges": [{"from": P}]},
     InputError, "edge 0 has no from/to"),
    ({"nodes": [], "edges": []}, InputError, "expected a JSON object with nodes and edges"),
    ("{", InputError, "malformed JSON at line 1"),
]  # fmt: skip


@pytest.mark.parametrize(("graph", "error", "message"), BAD_GRAPHS)
def test_closure_graph_bad_input(graph, error, message):
    with pytest.raises(error, match=None) as caught:
        read_closure_graph(graph, "g.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("g.json")


def test_real_closure_graph(real_data):
    file = real_data / "lf-blog_nixcon2022_nixos-system-micro_closure-graph.json"
    closure = read_closure_graph(file.read_text(), str(file))
    assert len(closure) == 913
    assert sum(len(i.references) for i in closure.infos()) == 3874
    assert closure.roots == (
        "/nix/store/p7kmr6b04zdsxkbxkx758gcfkjbcxma9-nixos-system-micro-22.11.20221011.285e77e",
    )
    assert closure.reachable(closure.roots) == set(closure)
    # The root's own closureSize is "5.8 GiB"; rounding of 913 sizes keeps us within 0.05 GiB.
    assert abs(closure.size() - 5.8 * (1 << 30)) < 0.05 * (1 << 30)
    assert not any(i.estimated for i in closure.infos())
    # read_path_info_json and read_file recognise the format too.
    assert summary(read_path_info_json(file.read_text(), "x")) == summary(closure)
    assert summary(sources.read_file(file)) == summary(closure)


@pytest.mark.parametrize(
    ("name", "paths", "edges"),
    [
        ("lf-blog_nixcon2022_actual-server_step0_before.json", 31, 76),
        ("lf-blog_nixcon2022_actual-server_step2_after.json", 20, 47),
    ],
)
def test_real_before_after_graphs(real_data, name, paths, edges):
    closure = sources.read_source(str(real_data / name))
    assert len(closure) == paths
    assert sum(len(i.references) for i in closure.infos()) == edges


# --- registration -------------------------------------------------------------------------


def registration(*, hash_line: str = "sha256:1cbfg6ggpyja8dd5fwdvsba82l1xvfikhvxqk3rsqdj7lqyg58dy"):
    return "".join(
        [
            f"{GLIBC}\n{hash_line}\n{SIZES[GLIBC]}\n\n0\n",
            f"{LIBFOO}\n{hash_line}\n{SIZES[LIBFOO]}\n\n1\n{GLIBC}\n",
            f"{APP}\n{hash_line}\n{SIZES[APP]}\n{APP_DRV}\n3\n{APP}\n{GLIBC}\n{LIBFOO}\n",
        ]
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(registration(), id="closureInfo"),
        pytest.param(
            registration(
                hash_line="703a5237915309d3396ce738d9ebfa818531a5baac141941f7ba17504f80fd23"
            ),
            id="dump-db-base16",
        ),
        pytest.param(registration().replace("\n", "\r\n"), id="crlf"),
        pytest.param(registration() + "\n\n", id="trailing-blank-lines"),
    ],
)
def test_registration(text):
    closure = read_registration(text, "registration")
    assert summary(closure) == EXPECTED
    assert closure.roots == (APP,)
    assert closure[APP].deriver == APP_DRV
    assert closure[GLIBC].deriver is None


BAD_REGISTRATIONS = [
    ("", InputError, "empty registration file"),
    ("glibc\n", InputError, "line 1: expected a store path, got 'glibc'"),
    (f"{P}\nsha256:x\n", InputError, "line 3: file ends where the narSize"),
    (f"{P}\nsha256:x\n12\n\n2\n{P}\n", InputError, "line 7: file ends where the reference"),
    (f"{P}\nsha256:x\nabc\n\n0\n", ClosureError, "non-integer narSize ('abc')"),
    (f"{P}\nsha256:x\n-5\n\n0\n", ClosureError, "negative narSize"),
    (f"{P}\nsha256:x\n{1 << 41}\n\n0\n", ClosureError, "absurd narSize"),
    (f"{P}\nsha256:x\n12\n\nmany\n", InputError, "line 5: expected the reference count"),
    (f"{P}\n\n1\n{LIBFOO}\n", ClosureError, "has no NAR hash and narSize"),
    (f"{P}\nsha256:x\n12\n\n1\n{LIBFOO}\n", ClosureError, f"references {LIBFOO}, which is not in"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "error", "message"), BAD_REGISTRATIONS)
def test_registration_bad_input(text, error, message):
    with pytest.raises(error) as caught:
        read_registration(text, "reg")
    assert message in str(caught.value)
    assert str(caught.value).startswith("reg")
    assert "\n" not in str(caught.value)


# --- narinfo ------------------------------------------------------------------------------


def narinfo(path: str, size: object, refs: tuple[str, ...], deriver: str | None = None) -> str:
    lines = [
        f"StorePath: {path}",
        f"URL: nar/{base(path)[:32]}.nar.xz",
        "Compression: xz",
        "FileHash: sha256:0f79z4x8arh5gh8zgd4za67rar8c32vd9qdkayp8d619pcyj1mk6",
        "FileSize: 212",
        "NarHash: sha256:003kyapn5yk9awlw1czjkpg7h8awqh0awg0z90l7gcny7mjpg52j",
    ]
    if size is not None:
        lines.append(f"NarSize: {size}")
    # Nix writes "References: " with a trailing space when there are none.
    lines.append("References: " + " ".join(base(r) for r in refs))
    if deriver:
        lines.append(f"Deriver: {base(deriver)}")
    lines += ["Sig: cache.example.org-1:abc==", "Sig: other-1:def=="]
    return "\n".join(lines) + "\n"


def test_narinfo():
    info = read_narinfo(narinfo(APP, SIZES[APP], REFS[APP], APP_DRV), "x.narinfo")
    assert info == PathInfo(APP, SIZES[APP], (GLIBC, LIBFOO), APP_DRV)
    empty = read_narinfo(narinfo(GLIBC, 5, ()), "y.narinfo")
    assert empty.references == ()
    assert empty.deriver is None
    unknown = read_narinfo(narinfo(GLIBC, 5, ()) + "Deriver: unknown-deriver\n", "z.narinfo")
    assert unknown.deriver is None


BAD_NARINFOS = [
    (narinfo(P, None, ()), ClosureError, f"{P} has no NarSize"),
    (narinfo(P, "12k", ()), ClosureError, "non-integer NarSize ('12k')"),
    (narinfo(P, "-1", ()), ClosureError, "negative NarSize"),
    ("URL: nar/x.nar\nNarSize: 5\n", InputError, "no StorePath line"),
    (f"StorePath: {P}\nthis is not a field\n", InputError, "line 2: expected 'Key: value'"),
    (f"StorePath: {P}\nNarSize: 1\nNarSize: 2\n", InputError, "line 3: NarSize given twice"),
    ("StorePath: /nix/store/x\nNarSize: 1\n", ClosureError, "not a store path"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "error", "message"), BAD_NARINFOS)
def test_narinfo_bad_input(text, error, message):
    with pytest.raises(error) as caught:
        read_narinfo(text, "bad.narinfo")
    assert message in str(caught.value)
    assert str(caught.value).startswith("bad.narinfo")


def write_cache(folder: Path, infos) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nix-cache-info").write_text(f"StoreDir: {STORE}\n")
    for info in infos:
        name = base(info.path)[:32] + ".narinfo"
        (folder / name).write_text(narinfo(info.path, info.nar_size, info.references, info.deriver))
    return folder


def test_narinfo_dir(tmp_path):
    unrelated = PathInfo(OTHER, 9, ())
    cache = write_cache(tmp_path / "cache", [*sample().infos(), unrelated])
    whole = sources.read_narinfo_dir(cache)
    assert set(whole.roots) == {APP, OTHER}
    for root in (APP, base(APP)):
        closure = sources.read_narinfo_dir(cache, root=root)
        assert summary(closure) == EXPECTED
        assert closure.roots == (APP,)
    assert summary(sources.read_source(str(cache))) == summary(whole)


def test_narinfo_dir_with_a_hole(tmp_path):
    cache = write_cache(tmp_path / "cache", [i for i in sample().infos() if i.path != GLIBC])
    with pytest.raises(ClosureError, match=f"references {GLIBC}, which the cache does not have"):
        sources.read_narinfo_dir(cache, root=APP)
    with pytest.raises(ClosureError, match="which is not in the closure"):
        sources.read_narinfo_dir(cache)
    with pytest.raises(ClosureError, match=f"{OTHER} is not in this cache"):
        sources.read_narinfo_dir(cache, root=OTHER)


def test_narinfo_dir_bad(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        sources.read_narinfo_dir(tmp_path / "missing")
    with pytest.raises(InputError, match=r"no \.narinfo files"):
        sources.read_narinfo_dir(tmp_path)
    (tmp_path / "a.narinfo").write_text(narinfo(P, None, ()))
    with pytest.raises(ClosureError, match=r"a\.narinfo: .* has no NarSize"):
        sources.read_narinfo_dir(tmp_path)


# --- the store database -------------------------------------------------------------------

# The schema of Nix's db.sqlite (schema version 10), as Nix 2.8 creates it.
SCHEMA = """
CREATE TABLE ValidPaths (
    id integer primary key autoincrement not null, path text unique not null,
    hash text not null, registrationTime integer not null, deriver text, narSize integer,
    ultimate integer, sigs text, ca text);
CREATE TABLE Refs (
    referrer integer not null, reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict);
CREATE INDEX IndexReferrer on Refs(referrer);
CREATE INDEX IndexReference on Refs(reference);
CREATE TABLE DerivationOutputs (
    drv integer not null, id text not null, path text not null, primary key (drv, id));
"""


def make_db(file: Path, infos, *, wal: bool = False) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(file)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(SCHEMA)
    ids = {}
    for info in infos:
        cur = conn.execute(
            "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize) "
            "VALUES (?, 'sha256:0', 0, ?, ?)",
            (info.path, info.deriver, info.nar_size),
        )
        ids[info.path] = cur.lastrowid
    conn.executemany(
        "INSERT INTO Refs VALUES (?, ?)",
        [(ids[i.path], ids[r]) for i in infos for r in i.references],
    )
    conn.commit()
    conn.close()
    return file


def all_infos() -> list[PathInfo]:
    # The app refers to itself, as real store paths often do.
    infos = [i for i in sample().infos() if i.path != APP]
    return [*infos, PathInfo(APP, SIZES[APP], (APP, GLIBC, LIBFOO), APP_DRV), PathInfo(OTHER, 9)]


def test_read_db(tmp_path):
    db = make_db(tmp_path / "db.sqlite", all_infos())
    closure = sources.read_db(db, [APP])
    assert summary(closure) == EXPECTED
    assert closure.roots == (APP,)
    assert closure[APP].deriver == APP_DRV
    assert OTHER not in closure
    both = sources.read_db(db, [LIBFOO, OTHER])
    assert set(both) == {LIBFOO, GLIBC, OTHER}
    assert both.roots == tuple(sorted([LIBFOO, OTHER]))


def test_read_db_bad(tmp_path):
    db = make_db(tmp_path / "db.sqlite", all_infos())
    with pytest.raises(InputError, match=f"{fake_path('nope-1')}: not in the store"):
        sources.read_db(db, [fake_path("nope-1")])
    with pytest.raises(InputError, match="no store paths"):
        sources.read_db(db, [])
    with pytest.raises(InputError, match=r"missing\.sqlite: no such file"):
        sources.read_db(tmp_path / "missing.sqlite", [APP])
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database at all, but long enough to have a header " * 20)
    with pytest.raises(InputError, match=r"junk\.sqlite: cannot read as a Nix store database"):
        sources.read_db(junk, [APP])
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).close()
    with pytest.raises(InputError, match="no such table: ValidPaths"):
        sources.read_db(empty, [APP])
    nulls = make_db(tmp_path / "nulls" / "db.sqlite", [PathInfo(P, 0)])
    conn = sqlite3.connect(nulls)
    conn.execute("UPDATE ValidPaths SET narSize = NULL")
    conn.commit()
    conn.close()
    with pytest.raises(ClosureError, match=f"{P} has no narSize"):
        sources.read_db(nulls, [P])


def test_read_db_wal_falls_back_to_immutable(tmp_path, monkeypatch):
    db = make_db(tmp_path / "db.sqlite", all_infos(), wal=True)
    real_connect = sqlite3.connect
    uris = []

    def connect(database, *args, **kwargs):
        uris.append(database)
        if "immutable=1" not in database:
            # What a reader gets when it may not create db.sqlite-shm beside a live database.
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sources.sqlite3, "connect", connect)
    assert summary(sources.read_db(db, [APP])) == EXPECTED
    assert uris[0].endswith("?mode=ro")
    assert uris[1].endswith("?mode=ro&immutable=1")


def test_read_db_does_not_write(tmp_path):
    db = make_db(tmp_path / "db.sqlite", all_infos())
    before = db.read_bytes()
    sources.read_db(db, [APP])
    assert db.read_bytes() == before


def test_read_db_odd_file_names(tmp_path):
    db = make_db(tmp_path / "a dir?#%" / "db.sqlite", all_infos())
    assert summary(sources.read_db(db, [APP])) == EXPECTED


def test_read_db_25000_paths(tmp_path):
    system = generate_system(25_000, 400, seed=3)
    assert len(system) > 20_000
    db = make_db(tmp_path / "db.sqlite", system.infos())
    started = time.perf_counter()
    closure = sources.read_db(db, system.roots)
    elapsed = time.perf_counter() - started
    assert summary(closure) == summary(system)
    # Its speed is a benchmark's business (a timed assertion fails on a loaded machine).
    print(f"read_db: {elapsed:.2f} s for {len(system)} paths")


# --- read_source: dispatch ----------------------------------------------------------------


@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty throwaway store layout: NIX_STORE_DIR and NIX_STATE_DIR in tmp_path."""
    monkeypatch.setenv("NIX_STORE_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("NIX_STATE_DIR", str(tmp_path / "var"))
    (tmp_path / "store").mkdir()
    return tmp_path / "store"


def no_nix(*args, **kwargs):
    raise AssertionError("nix must not be called")


def store_infos(store_dir: Path) -> list[PathInfo]:
    def move(p: str) -> str:
        return f"{store_dir}/{base(p)}"

    return [
        PathInfo(move(i.path), i.nar_size, tuple(move(r) for r in i.references), i.deriver)
        for i in all_infos()
    ]


@pytest.mark.parametrize("shape", ["list", "2.19", "v2", "registration", "graph"])
def test_read_source_files(tmp_path, shape):
    closure = sample()
    file = tmp_path / "saved"
    if shape == "registration":
        file.write_text(registration())
    elif shape == "graph":
        file.write_text(
            json.dumps(
                graph_of(
                    [(i.path, f"{i.nar_size} bytes") for i in closure.infos()],
                    [(i.path, r) for i in closure.infos() for r in i.references],
                )
            )
        )
    else:
        file.write_text(dump_path_info_json(closure, shape))  # type: ignore[arg-type]
    assert summary(sources.read_source(str(file))) == EXPECTED


def test_read_source_single_narinfo(tmp_path):
    file = tmp_path / "x.narinfo"
    file.write_text(narinfo(GLIBC, 42, ()))
    assert summary(sources.read_source(str(file))) == {GLIBC: (42, ())}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"   \n", "empty file"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"hello world\n", "unrecognised format"),
        (b"[1, 2", "malformed JSON at line 1"),
    ],
)
def test_read_source_bad_files(tmp_path, content, message):
    file = tmp_path / "bad"
    file.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        sources.read_source(str(file))
    assert str(caught.value).startswith(str(file))


def test_read_source_unreadable(tmp_path, monkeypatch):
    file = tmp_path / "locked.json"
    file.write_text("[]")

    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path) == str(file):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(InputError, match=r"locked\.json: Permission denied"):
        sources.read_source(str(file))


@pytest.mark.parametrize("spec", ["/does/not/exist.json", "nixpkgs#hello", "relative/missing"])
def test_read_source_nothing_there(spec):
    with pytest.raises(InputError, match="no such file or directory") as caught:
        sources.read_source(spec)
    assert f"cannot read {spec!r}" in str(caught.value)


def test_read_source_empty_spec():
    with pytest.raises(InputError, match="empty closure source"):
        sources.read_source("")


def test_read_source_store_path_uses_the_db(store, monkeypatch):
    infos = store_infos(store)
    make_db(nix.state_db_path(), infos)
    app = f"{store}/{base(APP)}"
    Path(app).write_text("x")
    monkeypatch.setattr(nix, "path_info", no_nix)
    closure = sources.read_source(app)
    assert closure.roots == (app,)
    assert len(closure) == 3
    # A link to a store path (./result, /run/current-system) is followed.
    link = store.parent / "result"
    link.symlink_to(app)
    assert sources.read_source(str(link)).roots == (app,)


def test_read_source_store_path_not_in_db(store, monkeypatch):
    make_db(nix.state_db_path(), store_infos(store))
    monkeypatch.setattr(nix, "path_info", no_nix)
    missing = f"{store}/{base(fake_path('gone-1.0'))}"
    with pytest.raises(InputError, match="not in the store"):
        sources.read_source(missing)


def test_read_source_store_path_without_db_asks_nix(store, monkeypatch):
    infos = store_infos(store)
    app = f"{store}/{base(APP)}"
    Path(app).write_text("x")
    closure_infos = [i for i in infos if not i.path.endswith("other-0.1")]
    calls = []

    def path_info(host, paths, *, recursive=True, store=None):
        calls.append((list(paths), recursive, store))
        return closure_infos

    monkeypatch.setattr(nix, "path_info", path_info)
    closure = sources.read_source(app)
    assert calls == [([app], True, None)]
    assert closure.roots == (app,)
    assert len(closure) == 3


def test_read_source_store_path_broken_db_asks_nix(store, monkeypatch):
    db = nix.state_db_path()
    db.parent.mkdir(parents=True)
    db.write_text("not a database " * 100)
    infos = [i for i in store_infos(store) if not i.path.endswith("other-0.1")]
    app = f"{store}/{base(APP)}"
    Path(app).write_text("x")
    monkeypatch.setattr(nix, "path_info", lambda host, paths, **kw: infos)
    assert sources.read_source(app).roots == (app,)


def test_read_source_derivation(store, monkeypatch):
    make_db(nix.state_db_path(), store_infos(store))
    drv = f"{store}/{base(APP_DRV)}"
    app = f"{store}/{base(APP)}"
    monkeypatch.setattr(nix, "query_outputs", lambda host, d: [app] if d == drv else [])
    monkeypatch.setattr(nix, "path_info", no_nix)
    closure = sources.read_source(drv)
    assert closure.roots == (app,)
    assert len(closure) == 3


@pytest.mark.parametrize("with_db", [True, False])
def test_read_source_derivation_not_built(store, monkeypatch, with_db):
    drv = f"{store}/{base(fake_path('new-2.0.drv'))}"
    out = f"{store}/{base(fake_path('new-2.0'))}"
    monkeypatch.setattr(nix, "query_outputs", lambda host, d: [out])
    if with_db:
        make_db(nix.state_db_path(), store_infos(store))
        monkeypatch.setattr(nix, "invalid_paths", no_nix)
    else:
        monkeypatch.setattr(nix, "invalid_paths", lambda host, paths: list(paths))
    with pytest.raises(InputError, match=f"{drv} is not built: {out} not in the store") as caught:
        sources.read_source(drv)
    assert "path-info JSON file" in str(caught.value)
    assert "substituter" in str(caught.value)


def test_read_source_file_inside_a_store_path(store):
    # closureInfo's registration lives at /nix/store/<hash>-closure-info/registration.
    info_dir = store / base(fake_path("closure-info"))
    info_dir.mkdir()
    (info_dir / "registration").write_text(registration())
    assert summary(sources.read_source(str(info_dir / "registration"))) == EXPECTED


def test_read_source_store_path_missing_without_db(store, monkeypatch):
    monkeypatch.setattr(nix, "path_info", no_nix)
    with pytest.raises(InputError, match="not in the store"):
        sources.read_source(f"{store}/{base(APP)}")
