"""`nix derivation show` / `nix show-derivation` JSON of every Nix version: `Derivation`s."""

from dataclasses import dataclass
from typing import Any

from adapters.nixstore.formats.checks import join
from adapters.nixstore.formats.fixed_output import fixed_hash, fixed_output_path
from solver.errors import InputError


@dataclass(frozen=True)
class Derivation:
    """What the planner needs of a store derivation, whatever JSON shape described it."""

    path: str
    # Output name -> output path (None: not known before the build, content-addressed).
    outputs: dict[str, str | None]
    # Input derivation -> the names of its outputs this one uses.
    input_drvs: dict[str, tuple[str, ...]]
    input_srcs: tuple[str, ...]
    # A fixed-output derivation (fetchurl, fetchgit): its output cannot reference anything.
    fixed: bool = False
    # The input sources its environment or arguments name, but as the script it runs: a
    # builder learns where a path is from those alone, so a source its output keeps a
    # reference to is named there (see estimate.py).
    named_srcs: tuple[str, ...] = ()


def parse_derivations(data: object, source: str, store_dir: str) -> dict[str, Derivation]:
    """The derivations of `nix show-derivation` / `nix derivation show` output, any version.

    Shapes (Nix's doc/manual/source/protocols/json/ and src/libstore-tests/data/):
    - a map of full `.drv` paths to derivations, with `inputDrvs` of output-name lists
      (Nix <= 2.18, Lix) or of `{"outputs": [...], "dynamicOutputs": {...}}` (2.19+);
    - derivation `version` 3: store paths as base names;
    - `version` 4: `inputs.drvs` and `inputs.srcs`; the whole output wrapped as
      `{"version": 4, "derivations": {...}}` with base-name keys.
    Paths given as base names are joined to `store_dir`. From Nix 2.32 a fixed output has
    no `path`: it is taken from the output's environment variable, else computed from its
    hash as Nix does (`fixed_output_path`).
    """
    if isinstance(data, dict) and isinstance(data.get("derivations"), dict):
        data = data["derivations"]
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected an object of derivations")
    out: dict[str, Derivation] = {}
    for key, value in data.items():
        path = join(store_dir, key)
        if not isinstance(value, dict):
            raise InputError(f"{source}: {path} is not a derivation object")
        out[path] = _derivation(path, value, source, store_dir)
    return out


def _derivation(path: str, value: dict[str, Any], source: str, store_dir: str) -> Derivation:
    env = value.get("env", {})
    if not isinstance(env, dict):
        raise InputError(f"{source}: {path}: env is not an object")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        # Nix <= 2.18 has no "name" field; the file's own name is "<hash>-<name>.drv".
        name = path.rpartition("/")[2].partition("-")[2].removesuffix(".drv")
    outputs: dict[str, str | None] = {}
    fixed = False
    raw_outputs = value.get("outputs", {})
    if not isinstance(raw_outputs, dict):
        raise InputError(f"{source}: {path}: outputs is not an object")
    for output, spec in raw_outputs.items():
        if not isinstance(spec, dict):
            raise InputError(f"{source}: {path}: output {output} is not an object")
        fixed = fixed or bool(spec.get("hash"))
        outputs[output] = _output_path(path, name, output, spec, env, source, store_dir)
    inputs = value.get("inputs")
    if isinstance(inputs, dict):  # version 4
        raw_drvs, raw_srcs = inputs.get("drvs", {}), inputs.get("srcs", [])
    else:
        raw_drvs, raw_srcs = value.get("inputDrvs", {}), value.get("inputSrcs", [])
    if not isinstance(raw_drvs, dict) or not isinstance(raw_srcs, list):
        raise InputError(f"{source}: {path}: malformed inputs")
    input_drvs: dict[str, tuple[str, ...]] = {}
    for drv, used in raw_drvs.items():
        # A list of output names, or {"outputs": [...], "dynamicOutputs": {...}}: outputs
        # of outputs (dynamic derivations) are not known before the build.
        names = used.get("outputs", []) if isinstance(used, dict) else used
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InputError(f"{source}: {path}: malformed outputs of input {drv}")
        input_drvs[join(store_dir, drv)] = tuple(names)
    srcs = tuple(join(store_dir, s) for s in raw_srcs if isinstance(s, str))
    return Derivation(path, outputs, input_drvs, srcs, fixed, _named(srcs, value, env))


def _named(srcs: tuple[str, ...], value: dict[str, Any], env: dict[str, Any]) -> tuple[str, ...]:
    """The `srcs` whose hash part appears in the derivation's environment (`__json` too,
    with structured attributes) or arguments. The script it runs is left out: the builder
    (its variable) and an argument that is a source's path alone (stdenv's
    `-e .../default-builder.sh`, `args = [ ./build.sh ]`)."""
    if not srcs:
        return ()
    args = value.get("args")
    scripts = set(srcs)
    words = (
        [a for a in args if isinstance(a, str) and a not in scripts]
        if isinstance(args, list)
        else []
    )
    words += [v for k, v in env.items() if k != "builder" and isinstance(v, str)]
    text = "\0".join(words)
    return tuple(s for s in srcs if s.rpartition("/")[2][:32] in text)


def _output_path(
    drv: str,
    name: str,
    output: str,
    spec: dict[str, Any],
    env: dict[str, Any],
    source: str,
    store_dir: str,
) -> str | None:
    """An output's store path: given, in its environment variable, or computed from its
    fixed hash; None when it is not known before the build (content-addressed)."""
    where = spec.get("path")
    if isinstance(where, str) and where:
        return join(store_dir, where)
    if not spec.get("hash"):
        return None
    # Nix 2.32 and later: "hash" and "method" but no "path"; the environment still has it.
    value = env.get(output)
    if (
        isinstance(value, str)
        and value.startswith(store_dir + "/")
        and "/" not in value[len(store_dir) + 1 :]
    ):
        return value
    method, algo, digest = fixed_hash(spec, f"{source}: {drv}: output {output}")
    return fixed_output_path(
        store_dir, name if output == "out" else f"{name}-{output}", method, algo, digest
    )
