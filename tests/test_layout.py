"""The layout of adapters/ and solver/: what imports what. The arrows point one way, and
every command runs on a host: adapters/nixstore/host.py (this machine) or ssh.py (a
--target-host)."""

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> nx.DiGraph:
    """module -> module it imports (adapters and solver only), from the source text."""
    graph = nx.DiGraph()
    paths = [*ROOT.glob("adapters/**/*.py"), *ROOT.glob("solver/**/*.py")]
    for path in paths:
        here = _module(path)
        graph.add_node(here)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] in ("adapters", "solver"):
                    graph.add_edge(here, name)
    # Keep only edges to real modules ("from pkg import mod" names both). The modules are
    # listed once, and only ours: a glob of the whole tree walks .venv (44 s).
    modules = {_module(p) for p in paths}
    return graph.subgraph(n for n in graph if n in modules).copy()


@pytest.fixture(scope="module")
def imports() -> nx.DiGraph:
    return _imports()


def test_no_import_cycles(imports):
    assert list(nx.simple_cycles(imports)) == []


def test_solver_is_pure(imports):
    assert not [
        (a, b) for a, b in imports.edges if a.startswith("solver") and b.startswith("adapters")
    ]


@pytest.mark.parametrize(
    "importer, imported",
    [
        ("adapters.nixstore.formats", "adapters.nixstore.nix"),
        ("adapters.nixstore.formats", "adapters.nixstore.process"),
        ("adapters.nixstore.formats", "adapters.nixstore.host"),
        ("adapters.nixstore.host", "adapters.nixstore.nix"),
        ("adapters.nixstore.host", "adapters.nixstore.ssh"),
        ("adapters.apply.nixos", "adapters.apply.executor"),
        ("adapters.apply.profile", "adapters.apply.executor"),
        ("adapters.apply.planning", "adapters.apply.executor"),
        ("adapters.apply.roots", "adapters.apply.executor"),
        ("adapters.studies.fleet", "adapters.cli.text"),
        ("adapters.studies.fleet.reading", "adapters.studies.fleet.report"),
        ("adapters.studies.fleet.solving", "adapters.studies.fleet.running"),
        ("adapters.studies.fleet", "adapters.studies.scenario"),
    ],
)
def test_arrows_point_one_way(imports, importer, imported):
    assert importer in imports, f"{importer} is missing"
    assert not nx.has_path(imports, importer, imported)


def test_the_format_parsers_are_pure(imports):
    """adapters/nixstore/formats reads text and JSON only: no module there reaches one
    that runs a process or touches a host."""
    parsers = [n for n in imports if n.startswith("adapters.nixstore.formats")]
    assert len(parsers) > 1
    for parser in parsers:
        for world in ("nix", "process", "host", "ssh", "sources"):
            assert not nx.has_path(imports, parser, f"adapters.nixstore.{world}"), parser


def test_only_the_hosts_run_processes(imports):
    """A command runs on a host: `Local` (host.py) or `Ssh` (ssh.py) hands it to
    process.py. Besides them, builds.py follows a build's log through process.monitored,
    and the fleet rollout runs budget-solve itself per host. No other module runs one."""
    runners = {a for a, b in imports.edges if b == "adapters.nixstore.process"}
    assert runners <= {
        "adapters.nixstore.host",
        "adapters.nixstore.ssh",
        "adapters.nixstore.builds",
        "adapters.studies.rollout",
    }
    for path in ROOT.glob("adapters/**/*.py"):
        if _module(path) != "adapters.nixstore.process":
            assert "import subprocess" not in path.read_text(), path
    builds = (ROOT / "adapters/nixstore/builds.py").read_text()
    assert "process.run(" not in builds


@pytest.mark.parametrize("layer", ["nixstore", "apply", "studies", "cli"])
def test_every_layer_is_a_package(layer):
    assert (ROOT / "adapters" / layer / "__init__.py").is_file()


# solver/: the core (closures, instances, plans, the validator), then the CP-SAT model, the
# search that uses it, and the what-if studies on top. Each arrow points down only.
_SOLVER_LAYERS = ("solver.model", "solver.search", "solver.whatif")


def _layer(module: str) -> int:
    for i, prefix in enumerate(_SOLVER_LAYERS, start=1):
        if module == prefix or module.startswith(prefix + "."):
            return i
    return 0


def test_solver_layers_point_down(imports):
    upward = [
        (a, b)
        for a, b in imports.edges
        if a.startswith("solver") and b.startswith("solver") and _layer(b) > _layer(a)
    ]
    assert upward == []


@pytest.mark.parametrize("package", ["model", "search", "whatif"])
def test_every_solver_layer_is_a_package(package):
    assert (ROOT / "solver" / package / "__init__.py").is_file()
