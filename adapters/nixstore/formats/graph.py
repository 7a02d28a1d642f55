"""nix-closure-graph JSON: `{"nodes", "edges"}`, sizes written for people ("1.3 KiB")."""

from adapters.nixstore.formats.checks import check_size, load_json, store_path
from solver.closure import Closure, PathInfo
from solver.errors import ClosureError, InputError
from solver.units import parse_size


def read_closure_graph(data: str | bytes | object, source: str) -> Closure:
    """A closure from nix-closure-graph JSON: nodes keyed by path, human sizes, edges from->to.

    Sizes like "1.3 KiB" are rounded by the tool that wrote them; they are converted with
    binary units and are not estimates (the path exists, its size is known to ~3 digits).
    """
    if isinstance(data, str | bytes):
        data = load_json(data, source)
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object with nodes and edges")
    nodes, edges = data.get("nodes"), data.get("edges")
    if not isinstance(nodes, dict) or not isinstance(edges, list):
        raise InputError(f"{source}: expected a JSON object with nodes and edges")
    refs: dict[str, list[str]] = {path: [] for path in nodes}
    for number, edge in enumerate(edges):
        if not isinstance(edge, dict) or not isinstance(edge.get("from"), str):
            raise InputError(f"{source}: edge {number} has no from/to")
        if not isinstance(edge.get("to"), str):
            raise InputError(f"{source}: edge {number} has no from/to")
        if edge["from"] not in refs:
            raise ClosureError(f"{source}: edge {number} starts at {edge['from']}, not a node")
        refs[edge["from"]].append(edge["to"])
    infos = []
    for key, node in nodes.items():
        path = store_path(key, source)
        props = node.get("props") if isinstance(node, dict) else None
        if not isinstance(props, dict):
            raise InputError(f"{source}: node {path} has no props")
        size = props.get("narSize")
        if isinstance(size, str):
            try:
                size = parse_size(size)
            except InputError as e:
                raise ClosureError(f"{source}: {path} has an unreadable narSize {size!r}") from e
        deriver = props.get("deriver")
        infos.append(
            PathInfo(
                path,
                check_size(size, path, source),
                tuple(refs[key]),
                deriver if isinstance(deriver, str) and deriver else None,
            )
        )
    return Closure(infos, source=source)
