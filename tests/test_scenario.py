"""What-if scenarios: hash propagation, the YAML schema, the shipped scenarios (their
figures: tests/test_plots.py)."""

import json
import random
import zlib
from pathlib import Path

import networkx as nx
import pytest

from adapters.cli import main
from adapters.nixstore.sources import read_source
from adapters.studies import changes
from adapters.studies import scenario as sc
from solver.closure import Closure
from solver.errors import InputError
from solver.storepath import StorePath
from solver.whatif import diffclosures
from solver.whatif.scenario import Add, Bump, GrowAll, Growth, Remove, apply_change, apply_changes

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"
MICRO = REAL / "lf-blog_nixcon2022_nixos-system-micro_closure-graph.json"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

needs_real = pytest.mark.skipif(not MICRO.exists(), reason="../shared/data/real is not here")


@pytest.fixture(scope="module")
def micro() -> Closure:
    return read_source(str(MICRO))


def graph(closure: Closure) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(closure)
    g.add_edges_from((i.path, r) for i in closure.infos() for r in i.references if r != i.path)
    return g


def pname_paths(closure: Closure, name: str) -> list[str]:
    return [p for p in closure if StorePath.parse(p).pname == name]


@needs_real
def test_bump_changes_exactly_what_reaches_the_package(micro):
    g = graph(micro)
    names = sorted({StorePath.parse(p).pname for p in micro})
    chosen = ["openssl", "zlib", "glibc", "systemd", *random.Random(3).sample(names, 25)]
    for name in chosen:
        seeds = pname_paths(micro, name)
        new = apply_change(micro, Bump((name,), Growth(1.03)), random.Random(0), "t")
        expected = set(seeds).union(*(nx.ancestors(g, s) for s in seeds))
        assert set(micro) - set(new) == expected, name
        # Same number of paths, each changed one replaced by one new path.
        assert len(new) == len(micro)
        for s in seeds:
            assert (
                micro[s].nar_size * 1.03
                == pytest.approx(
                    max(new[p].nar_size for p in pname_paths(new, name)), rel=0.01, abs=2
                )
                or len(seeds) > 1
            )


@needs_real
def test_glibc_bump_is_a_mass_rebuild(micro):
    new = apply_changes(micro, [Bump(("glibc",), version="2.40")])
    changed = set(micro) - set(new)
    assert len(changed) > 0.7 * len(micro)  # data, scripts and fonts do not link glibc
    assert all("glibc-2.40" in p for p in pname_paths(new, "glibc"))


@needs_real
def test_add_and_remove_rehash_only_the_glue_above(micro):
    g = graph(micro)
    system_path = next(p for p in micro if StorePath.parse(p).name == "system-path")
    new = apply_changes(micro, [Add("btop-1.4.0", 2 << 20, ("glibc",))])
    added = pname_paths(new, "btop")
    assert len(added) == 1 and new[added[0]].nar_size == 2 << 20
    assert set(micro) - set(new) == {system_path} | nx.ancestors(g, system_path)

    victim = "nano"
    gone = apply_changes(micro, [Remove((victim,))])
    assert not pname_paths(gone, victim)
    assert gone.reachable(gone.roots) == set(gone)


def test_grow_all_rebuilds_everything():
    c = read_source(str(ROOT / "scenarios" / "examples" / "user-story.json"))
    new = apply_changes(c, [GrowAll(Growth(1.1))])
    assert not set(c) & set(new)
    assert new.size() == pytest.approx(c.size() * 1.1, rel=1e-6)


def test_unknown_package_names_the_change_and_suggests():
    c = read_source(str(ROOT / "scenarios" / "examples" / "user-story.json"))
    with pytest.raises(InputError, match=r"no package 'bigPackageC'.*did you mean 'bigPackage"):
        apply_changes(c, [Bump(("bigPackageC",))])


@pytest.mark.parametrize(
    ("text", "factor", "delta"),
    [("3%", 1.03, 0), ("-1.5%", 0.985, 0), ("+2M", 1.0, 2 << 20), ("-512K", 1.0, -(512 << 10))],
)
def test_growth(text, factor, delta):
    g = changes.growth(text, changes.y.Where("f.yaml"))
    assert g.factor == pytest.approx(factor) and g.delta == delta


BAD = [
    ("current: C\nchanges: []\nlimit: 9G\n", r"f.yaml:2: changes: expected a non-empty list"),
    ("current: x.json\nchanges: []\nlimit: 9G\n", r"f.yaml:1: current: cannot read .*x.json"),
    (
        "current: C\nchanges:\n  - bump: openssl\n    grwo: 3%\nlimit: 9G\n",
        r"f.yaml:4: changes\[0\].grwo: unknown key \(did you mean 'grow'\?\)",
    ),
    (
        "current: C\nchanges:\n  - bump: openssl\nlimits: [7G, 9Q]\n",
        r"f.yaml:4: limits\[1\]: invalid size '9Q'",
    ),
    ("current: C\nchanges:\n  - bump: openssl\n", r"f.yaml:1: give limits: .* or limit"),
    (
        "current: C\nchanges:\n  - bump: opensl\nlimit: 9G\n",
        r"f.yaml:3: changes\[0\]: no package 'opensl'.*did you mean 'openssl'",
    ),
    (
        "current: C\nchanges:\n  - bump: openssl\n    grow: lots\nlimit: 9G\n",
        r"f.yaml:4: changes\[0\].grow: invalid size 'lots'",
    ),
    (
        "current: C\nchanges:\n  - upgrade: x\nlimit: 9G\n",
        r"f.yaml:3: changes\[0\]: give exactly one",
    ),
    ("current: C\nchanges: [\n", r"f.yaml:\d+: invalid YAML"),
    (
        "current: C\nchanges:\n  - bump: openssl\nlimit: 9G\ntime_limit: fast\n",
        r"f.yaml:5: time_limit: expected a number",
    ),
    (
        "current: {generate: {paths: 100, components: 9000}}\nchanges:\n  - grow_all: 1%\n"
        "limit: 9G\n",
        r"f.yaml:1: current.generate.components: must be between",
    ),
    ("- a\n- b\n", r"f.yaml:1: expected a mapping, got a list"),
    # Values no plan or store path can have: each refused with its line.
    ("current: C\nchanges: [{bump: openssl}]\nlimit: 0\n", r"f.yaml:3: limit: .*0 bytes"),
    (
        "current: C\nchanges: [{bump: openssl}]\nlimits: [9G, 0G]\n",
        r"f.yaml:3: limits\[1\]: '0G': a budget of 0 bytes",
    ),
    (
        "current: C\nchanges: [{bump: openssl}]\nlimits: [9G, 7G]\nreserve: 7G\n",
        r"f.yaml:4: reserve: 7.0 GiB leaves nothing of the budget 7.0 GiB",
    ),
    ("current: C\nchanges: [{bump: openssl}]\nlimit: 9G\nreserve: -1G\n", r"f.yaml:4: reserve"),
    (
        "current: C\nchanges: [{bump: openssl}]\nlimit: 9G\ntime_limit: 1.0e+308\n",
        r"f.yaml:4: time_limit: must be at most 86400",
    ),
    ("current: C\nchanges: [{bump: []}]\nlimit: 9G\n", r"f.yaml:2: changes\[0\].bump: .*got 0"),
    ("current: C\nchanges: [{remove: []}]\nlimit: 9G\n", r"changes\[0\].remove: .*got 0"),
    (
        "current: C\nchanges: [{bump: openssl, version: ''}]\nlimit: 9G\n",
        r"f.yaml:2: changes\[0\].version: expected a non-empty string",
    ),
    (
        "current: C\nchanges: [{bump: openssl, version: 'a b'}]\nlimit: 9G\n",
        r"f.yaml:2: changes\[0\].version: 'a b': a version in a store path has only",
    ),
    (
        "current: C\nchanges: [{add: 'my tool', size: 1M}]\nlimit: 9G\n",
        r"f.yaml:2: changes\[0\].add: 'my tool': a name in a store path",
    ),
    (
        "current: C\nchanges: [{add: tool, size: 2P}]\nlimit: 9G\n",
        r"f.yaml:2: changes\[0\].size: '2P' is larger than any store path",
    ),
    (
        "current: C\nchanges: [{grow_all: +999P}]\nlimit: 9G\n",
        r"f.yaml:2: changes\[0\].grow_all: \+999P: a growth of at most 1.0 TiB",
    ),
    (
        "current: C\nchanges: [{grow_all: 60%}, {grow_all: +600G}, {grow_all: +600G}]\nlimit: 9G\n",
        r"f.yaml:2: changes\[2\]: grows /nix/store/\S+ to [\d,]+ bytes, larger than any",
    ),
    (
        'current: C\nchanges: [{bump: openssl}]\nlimit: 9G\nname: "a\\x1b[2Jb"\n',
        r"f.yaml:4: name: .*no control characters",
    ),
    (
        "current: C\nchanges: [{bump: openssl}]\nlimit: 9G\npinned: [{name: x, size: 2T}]\n",
        r"f.yaml:4: pinned\[0\].size: '2T' is larger than any store path",
    ),
    (
        "current: C\nchanges: [{bump: openssl}]\nlimit: 9G\npinned: [nosuch]\n",
        r"f.yaml:4: pinned\[0\]: no package 'nosuch'",
    ),
]


def test_a_path_of_1_tib_grown_is_out_of_range(tmp_path):
    """A saved closure may hold a path of up to 1 TiB; growing it past that is refused on
    the change's line, before any sum of sizes could overflow the solver's integers."""
    big, libc = f"/nix/store/{'a' * 32}-big-1.0", f"/nix/store/{'b' * 32}-glibc-2.40"
    data = {big: {"narSize": 1 << 40, "references": [libc]}, libc: {"narSize": 9, "references": []}}
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "f.yaml").write_text("current: c.json\nlimit: 9G\nchanges:\n  - grow_all: 1%\n")
    with pytest.raises(InputError, match=r"f.yaml:4: changes\[0\]: grows .*-big-1.0 to "):
        sc.load(tmp_path / "f.yaml")


@pytest.mark.parametrize(("text", "message"), BAD)
def test_schema_errors_name_file_line_and_key(tmp_path, text, message):
    example = ROOT / "scenarios" / "examples" / "nixos-current.json"
    (tmp_path / "f.yaml").write_text(text.replace("current: C", f"current: {example}"))
    with pytest.raises(InputError) as e:
        sc.load(tmp_path / "f.yaml")
    assert e.match(message.replace("f.yaml", str(tmp_path / "f.yaml")))


def test_schema_error_on_the_command_line_is_one_line(tmp_path, capsys):
    (tmp_path / "f.yaml").write_text("current: nowhere.json\nchanges: [{bump: x}]\nlimit: 1G\n")
    with pytest.raises(SystemExit) as e:
        main(["scenario", str(tmp_path / "f.yaml")])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_scenarios_run_and_validate(path):
    spec = sc.load(path)
    spec.time_limit = min(spec.time_limit, 3.0)
    outcome = sc.run(spec)  # validates every plan it finds
    assert len(outcome.results) == len(spec.limits)
    assert any(r.plan is not None for r in outcome.results), "no budget of the sweep fits"
    steps = [len(r.plan) if r.plan else None for r in outcome.results]
    # More budget never needs more steps (the sweep is sorted).
    fitting = [s for s in steps if s is not None]
    assert fitting == sorted(fitting, reverse=True)
    doc = outcome.to_json()
    assert doc["changed_paths"] > 0


def png_chunks(data: bytes) -> dict[bytes, list[bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, list[bytes]] = {}
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = int.from_bytes(data[pos + 8 + length : pos + 12 + length], "big")
        assert zlib.crc32(kind + body) == crc
        chunks.setdefault(kind, []).append(body)
        pos += 12 + length
    return chunks


def assert_matplotlib_png(path: Path) -> None:
    chunks = png_chunks(path.read_bytes())
    assert b"IEND" in chunks and b"IDAT" in chunks
    texts = b" ".join(chunks.get(b"tEXt", []))
    assert b"Software" in texts and b"Matplotlib" in texts


def test_plot_into_a_missing_directory_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["scenario", str(SCENARIOS[0]), "--plot", str(tmp_path / "no" / "x.png")])
    assert e.value.code == 2
    assert "no directory" in capsys.readouterr().err


# -- diff-closures -------------------------------------------------------------------------


def test_diff_line_forms():
    p = diffclosures.parse_line
    assert p("curl: 7.68.0 → 7.70.0, +19.1 KiB") == diffclosures.DiffLine(
        "curl", ("7.68.0",), ("7.70.0",), 19558
    )
    assert p("jdk: 21.0.8, 25.0.0 → 21.0.11, 25.0.3, \x1b[31;1m4.4 MiB\x1b[0m").new == (
        "21.0.11",
        "25.0.3",
    )
    assert p("x: 1.0 → ∅, \x1b[32;1m-2.0 MiB\x1b[0m").removed
    added = p("y: ∅ → ε, \x1b[31;1m+1.0 KiB\x1b[0m")
    assert added.added and added.new == ("",) and added.delta == 1024
    assert p("ICU: +38689.9 KiB").delta == round(38689.9 * 1024)
    assert p("nixos-system-x: 20.03 → 20.09").delta is None
    assert p('Reapply "bloop: 2.0.18 → 2.0.19"') is None
    assert p("#### commit abc") is None


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data/real is not here")
def test_real_diff_closures_outputs():
    text = (REAL / "kubukoz-nix-config_diff-closures-commit-messages.txt").read_text()
    blocks = diffclosures.blocks(text)
    assert len(blocks) == 199
    lines = diffclosures.parse(text)
    for raw in text.splitlines():
        plain = diffclosures.ANSI.sub("", raw)
        if "→" in plain and not plain.startswith((" ", "Reapply", "Revert")) and "iB" in plain:
            line = diffclosures.parse_line(raw)
            assert line is not None and line.delta is not None, raw
    assert sum(1 for d in lines if d.delta is not None) > 3400
    hagbard = diffclosures.parse(
        (REAL / "nixos-nix-pr3818_diff-closures_nixos-system-hagbard.txt").read_text()
    )
    assert len(hagbard) == 22


@needs_real
def test_real_diff_applied_to_the_real_closure(micro):
    text = (REAL / "nixos-nix-pr3818_diff-closures_nixos-system-hagbard.txt").read_text()
    translated = diffclosures.read(text, micro)
    names = {c.names[0] for c in translated.changes if isinstance(c, Bump)}
    assert {"curl", "linux"} <= names
    new = apply_changes(micro, translated.changes)
    g = graph(micro)
    seeds = [p for n in names for p in pname_paths(micro, n)]
    removed = [c for c in translated.changes if isinstance(c, Remove)]
    if not removed:
        expected = set(seeds).union(*(nx.ancestors(g, s) for s in seeds))
        assert set(micro) - set(new) == expected
    curl_old = sum(micro[p].nar_size for p in pname_paths(micro, "curl"))
    curl_new = sum(new[p].nar_size for p in pname_paths(new, "curl"))
    assert curl_new - curl_old == pytest.approx(19558, abs=len(pname_paths(micro, "curl")))
    assert all("7.70.0" in p for p in pname_paths(new, "curl"))


def test_diff_closures_json_forms():
    """`nix store diff-closures --json` (Nix: versions as the text shows them, only when they
    change; Lix: lists under "packages", with a schema name), from their sources."""
    nix_doc = {
        "dolphin": {"versionsBefore": "20.08.1", "versionsAfter": "20.08.2", "sizeDelta": 13900},
        "bluez-qt": {"sizeDelta": 12902},
        "kdeconnect": {"versionsBefore": "20.08.2", "versionsAfter": "∅", "sizeDelta": -6756147},
    }
    lines = {d.name: d for d in diffclosures.parse_json(nix_doc)}
    assert lines["dolphin"] == diffclosures.DiffLine("dolphin", ("20.08.1",), ("20.08.2",), 13900)
    assert lines["bluez-qt"].old is None and lines["bluez-qt"].delta == 12902
    assert lines["kdeconnect"].removed
    lix_doc = {
        "packages": {
            "02overridedns": {"sizeDelta": -688, "versionsAfter": [], "versionsBefore": [""]},
            "neovim": {"sizeDelta": 1024, "versionsAfter": ["0.10.4"], "versionsBefore": []},
        },
        "schema": "lix-closure-diff-v1",
    }
    lix = {d.name: d for d in diffclosures.parse_json(lix_doc)}
    assert lix["02overridedns"].removed and lix["02overridedns"].old == ("",)
    assert lix["neovim"].added and lix["neovim"].new == ("0.10.4",)
    with pytest.raises(InputError, match="sizeDelta"):
        diffclosures.parse_json({"x": {"sizeDelta": "big"}})


@needs_real
def test_real_diff_as_json_reads_like_the_text(micro):
    """The real hagbard diff, written as Nix's and as Lix's JSON would carry it: the same
    changes as from the text."""
    text = (REAL / "nixos-nix-pr3818_diff-closures_nixos-system-hagbard.txt").read_text()

    def shown(versions):
        return ", ".join(v or "ε" for v in versions) if versions else "∅"

    nix_doc, lix_doc = {}, {}
    for d in diffclosures.parse(text):
        entry, listed = {"sizeDelta": d.delta or 0}, {"sizeDelta": d.delta or 0}
        if d.old is not None:
            entry |= {"versionsBefore": shown(d.old), "versionsAfter": shown(d.new)}
            listed |= {"versionsBefore": list(d.old), "versionsAfter": list(d.new)}
        nix_doc[d.name], lix_doc[d.name] = entry, listed
    from_text = diffclosures.read(text, micro).changes
    assert diffclosures.read(json.dumps(nix_doc), micro).changes == from_text
    lix_text = json.dumps({"packages": lix_doc, "schema": "lix-closure-diff-v1"})
    assert diffclosures.read(lix_text, micro).changes == from_text
