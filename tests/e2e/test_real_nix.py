"""The readers against the real Nix: build a small closure in a throwaway store and check
that every way of reading it agrees with what `nix path-info -s -r` and `-S` print."""

import json
from pathlib import Path

import pytest

from adapters.nixstore import nix, sources
from adapters.nixstore.formats.pathinfo import dump_path_info_json, parse_path_info
from adapters.nixstore.formats.registration import read_registration
from adapters.nixstore.host import LOCAL
from solver.closure import Closure
from solver.errors import InputError, NixError

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

# Builders are /bin/sh; the build environment has no PATH, so each script sets one.
EXPR = """
let
  mk = name: deps: script: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" ("PATH=/usr/bin:/bin; " + script) ];
  };
  file = name: size: deps: mk name deps
    "echo ${toString deps} > $out; head -c ${toString size} /dev/zero >> $out";
in rec {
  glibc = file "glibc-2.39-52" 300000 [];
  libfoo = file "libfoo-1.0" 100000 [ glibc ];
  libbar = file "libbar-2.1" 50000 [ glibc ];
  # A directory that names itself: Nix lists the self-reference, the readers drop it.
  app = mk "app-3.1" [ libfoo libbar ] ''
    mkdir -p $out/bin
    echo "#!${glibc} ${libfoo} ${libbar}" > $out/bin/app
    echo $out >> $out/bin/app
    head -c 20000 /dev/zero > $out/data
  '';
  system = file "nixos-system-test-1" 1000 [ app libfoo ];
  notbuilt = file "notbuilt-1.0" 10 [ glibc ];
}
"""


def summary(closure: Closure) -> dict[str, tuple[int, tuple[str, ...]]]:
    return {i.path: (i.nar_size, tuple(sorted(i.references))) for i in closure.infos()}


def sizes(closure: Closure) -> dict[str, int]:
    return {i.path: i.nar_size for i in closure.infos()}


def nix_sizes(store, link: Path) -> dict[str, int]:
    """What `nix path-info -s -r` prints: a path, padding, a tab and the NAR size per line."""
    out = store.run("nix", "path-info", "-s", "-r", str(link))
    return {line.split()[0]: int(line.split()[-1]) for line in out.splitlines() if line.strip()}


def nix_closure_size(store, link: Path) -> int:
    out = store.run("nix", "path-info", "-S", str(link))
    return int(out.split()[-1])


@pytest.fixture
def built(nix_store):
    """The test system, built with `nix-build -o result`: (store, expr file, link, path)."""
    expr = nix_store.write("closure.nix", EXPR)
    link = nix_store.root / "result"
    path = nix_store.build(expr, "system", link)
    return nix_store, expr, link, path


def test_store_is_throwaway(built):
    store, _, _, path = built
    assert LOCAL.store_dir() == str(store.store_dir)
    assert nix.state_db_path() == store.db
    assert store.db.is_file()
    assert path.startswith(f"{store.store_dir}/")


def test_live_path_info_matches_nix(built):
    store, _, link, path = built
    closure = nix.closure(LOCAL, str(link))
    assert closure.roots == (path,)
    assert len(closure) == 5
    assert sizes(closure) == nix_sizes(store, link)
    assert closure.size() == nix_closure_size(store, link)
    app = next(p for p in closure if p.endswith("-app-3.1"))
    assert app not in closure[app].references
    names = sorted(r.rpartition("/")[2].partition("-")[2] for r in closure[app].references)
    assert names == ["glibc-2.39-52", "libbar-2.1", "libfoo-1.0"]
    assert closure[app].deriver is not None
    assert closure[app].deriver.endswith("-app-3.1.drv")


def test_path_info_not_recursive(built):
    _, _, _, path = built
    (info,) = nix.path_info(LOCAL, [path], recursive=False)
    assert info.path == path
    assert len(info.references) == 2


def test_read_db_matches_nix(built):
    store, _, link, path = built
    live = nix.closure(LOCAL, path)
    closure = sources.read_db(store.db, [path])
    assert summary(closure) == summary(live)
    assert closure.size() == nix_closure_size(store, link)
    assert sizes(closure) == nix_sizes(store, link)


def test_read_source_store_path_link_and_drv(built):
    store, _, link, path = built
    live = summary(nix.closure(LOCAL, path))
    assert summary(sources.read_source(path)) == live
    assert summary(sources.read_source(str(link))) == live
    drv = store.run("nix-store", "--query", "--deriver", path).strip()
    from_drv = sources.read_source(drv)
    assert from_drv.roots == (path,)
    assert summary(from_drv) == live


def test_read_source_without_a_readable_db_asks_nix(built, monkeypatch):
    store, _, link, path = built
    monkeypatch.setattr(nix, "state_db_path", lambda: store.root / "no" / "db.sqlite")
    closure = sources.read_source(str(link))
    assert closure.roots == (path,)
    assert sizes(closure) == nix_sizes(store, link)


def test_binary_cache(built):
    store, _, link, path = built
    cache = store.root / "cache"
    store.run("nix", "copy", "--to", f"file://{cache}", str(link))
    expected = nix_sizes(store, link)
    total = nix_closure_size(store, link)

    from_dir = sources.read_narinfo_dir(cache, root=path)
    assert sizes(from_dir) == expected
    assert from_dir.size() == total
    assert summary(sources.read_source(str(cache))) == summary(from_dir)

    infos = nix.path_info(LOCAL, [path], store=f"file://{cache}")
    assert {i.path: i.nar_size for i in infos} == expected
    via_nix = nix.closure(LOCAL, path, store=f"file://{cache}")
    assert summary(via_nix) == summary(from_dir)
    assert via_nix.size() == total


def test_registration_from_dump_db(built):
    store, _, link, path = built
    paths = store.run("nix-store", "--query", "--requisites", path).split()
    text = store.run("nix-store", "--dump-db", *paths)
    closure = read_registration(text, "dump-db")
    assert summary(closure) == summary(nix.closure(LOCAL, path))
    assert closure.size() == nix_closure_size(store, link)


def test_saved_path_info_files(built):
    store, _, link, path = built
    live = summary(nix.closure(LOCAL, path))
    saved = store.write("path-info.json", store.run("nix", "path-info", "--json", "-r", str(link)))
    assert summary(sources.read_source(str(saved))) == live
    for shape in ("list", "2.19", "v2"):
        dumped = store.write(f"{shape}.json", dump_path_info_json(nix.closure(LOCAL, path), shape))
        assert summary(sources.read_source(str(dumped))) == live


def test_gc_roots_find_the_result_link(built):
    store, expr, link, path = built
    roots = nix.gc_roots(LOCAL)
    assert roots[str(link)] == path
    other = store.root / "result-libfoo"
    libfoo = store.build(expr, "libfoo", other)
    assert nix.gc_roots(LOCAL)[str(other)] == libfoo


def test_derivation_not_built_then_realised(built):
    store, expr, _, _ = built
    drv = store.run("nix-instantiate", str(expr), "-A", "notbuilt").strip()
    (out,) = nix.query_outputs(LOCAL, drv)
    assert out.endswith("-notbuilt-1.0")
    assert nix.invalid_paths(LOCAL, [out]) == [out]
    with pytest.raises(InputError, match=f"{drv} is not built: {out} not in the store"):
        sources.read_source(drv)
    assert nix.realise(LOCAL, drv) == [out]
    assert nix.invalid_paths(LOCAL, [out]) == []
    closure = sources.read_source(drv)
    assert closure.roots == (out,)
    assert len(closure) == 2


def test_nix_failures_are_one_line_errors(nix_store):
    missing = f"{nix_store.store_dir}/{'a' * 32}-missing-1.0.drv"
    with pytest.raises(NixError) as caught:
        nix.query_outputs(LOCAL, missing)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"nix-store --query --outputs {missing} failed with exit code")
    with pytest.raises(NixError):
        nix.path_info(LOCAL, [missing.removesuffix(".drv")])


def test_path_info_json_is_what_nix_prints(built):
    # Guard against a Nix that changes shape under us: whatever it prints must parse.
    store, _, link, _ = built
    data = json.loads(store.run("nix", "path-info", "--json", "-r", str(link)))
    assert len(parse_path_info(data, "nix")) == 5
