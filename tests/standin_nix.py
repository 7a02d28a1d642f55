"""A stand-in for `nix` and `nix-store` that answers as one Nix version does.

Installed on PATH by tests/test_nix_versions.py under both names. It reads its script
from $BUDGET_SOLVE_STANDIN: the version line, the verbs it takes (and which of them are
deprecated aliases, which work with a warning), the JSON that version's
`nix derivation show -r` (or `show-derivation`) prints, the output paths of each
derivation, what the binary cache holds, the path-info shape the version prints and
whether it has `--json-format`. Every call is logged to the script's "calls" file (when
it names one), path-info calls also to its "log" file. A verb the version does not have
fails as Nix fails: "error: 'X' is not a recognised command".

What it prints has the shape real Nix prints, as tests/e2e/test_standin_conformance.py
checks against Nix 2.8, 2.26 and 2.34: the same keys in each JSON record, the same
warnings on stderr.
"""

import json
import os
import sys

# `nix path-info --json` of a path in a binary cache in the object shape (2.19 on): the
# keys real Nix prints (the list shape of 2.8 has path, narHash, narSize, references,
# deriver, url, downloadHash and downloadSize).
OBJECT_CACHED = (
    "ca",
    "compression",
    "deriver",
    "downloadHash",
    "downloadSize",
    "narHash",
    "registrationTime",
    "signatures",
    "ultimate",
    "url",
)
NAR_HASH = "sha256-EFUdrtf6Rn0LWIJufrmg8q99aT3jGfLvd1//zaJEufY="


def main() -> int:
    script = json.load(open(os.environ["BUDGET_SOLVE_STANDIN"]))
    prog = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if script.get("calls"):
        with open(script["calls"], "a") as calls:
            calls.write(json.dumps([prog, *args]) + "\n")
    if prog == "nix-store":
        return nix_store(script, args)
    if args == ["--version"]:
        print(script["version"])
        return 0
    while args and args[0] == "--extra-experimental-features":
        args = args[2:]
    verb = args[:2] if args[:1] in (["derivation"], ["config"]) else args[:1]
    said = " ".join(verb)
    if said not in script["verbs"]:
        # Nix names the first word it does not know: 'derivation', not 'derivation show'.
        print(f"error: '{verb[0]}' is not a recognised command", file=sys.stderr)
        print("Try 'nix --help' for more information.", file=sys.stderr)
        return 1
    deprecated = script.get("deprecated", {})
    if said in deprecated:
        # Nix 2.20 on (2.26, 2.34): the old verbs still work, with this warning.
        print(f"warning: '{said}' is a deprecated alias for '{deprecated[said]}'", file=sys.stderr)
        verb = deprecated[said].split()
    if verb in (["show-derivation"], ["derivation", "show"]):
        print(json.dumps(script["derivations"]))
        return 0
    if verb in (["show-config"], ["config", "show"]):
        record = {
            "aliases": ["binary-caches"],
            "defaultValue": ["https://cache.nixos.org/"],
            "description": "\nA list of [URLs of Nix stores](@docroot@/store/types/index.md)\n",
            "documentDefault": True,
            "value": [],
        }
        if script.get("experimental_feature_key"):
            record["experimentalFeature"] = None
        print(json.dumps({"substituters": record}))
        return 0
    if verb == ["path-info"]:
        with open(script["log"], "a") as log:
            log.write(" ".join(args) + "\n")
        # --json-format came with Nix 2.33, which warns when --json is given without it.
        if "--json-format" in args and not script["json_format"]:
            print("error: unrecognised flag '--json-format'", file=sys.stderr)
            print("Try 'nix --help' for more information.", file=sys.stderr)
            return 1
        if script["json_format"] and "--json-format" not in args:
            print(
                "warning: '--json' without '--json-format' is deprecated; please specify "
                "'--json-format 1' or '--json-format 2'. This will become an error in a "
                "future release.",
                file=sys.stderr,
            )
        paths = [a for a in args[1:] if a.startswith("/")]
        missing = [p for p in paths if p not in script["cache"]]
        if missing:
            # Every Nix says so on stderr, and exits 0 with the path in its output.
            print("don't know how to build these paths:", file=sys.stderr)
            for p in missing:
                print(f"  {p}", file=sys.stderr)
        print(json.dumps(path_info(script, paths)))
        return 0
    print(f"stand-in: unexpected {args}", file=sys.stderr)
    return 2


def path_info(script: dict, paths: list[str]) -> object:
    """What `nix path-info --json --store CACHE PATHS` prints: each path the cache has
    with the keys the version prints (Nix sorts the list's paths and the object's keys)."""
    cache = script["cache"]
    if script["path_info"] == "list":
        out = []
        for p in sorted(paths):
            if p not in cache:
                out.append({"path": p, "valid": False})
                continue
            info = cache[p]
            record = {"path": p, **info, "deriver": None, "narHash": NAR_HASH}
            record |= {"url": "nar/x.nar.xz", "downloadHash": NAR_HASH, "downloadSize": 1}
            out.append(record)
        return out
    doc: dict[str, object] = {}
    for p in sorted(paths):
        if p not in cache:
            doc[p] = None
            continue
        record = {key: None for key in OBJECT_CACHED}
        record |= {
            **cache[p],
            "compression": "xz",
            "downloadHash": NAR_HASH,
            "downloadSize": 1,
            "narHash": NAR_HASH,
            "signatures": [],
            "ultimate": False,
            "url": "nar/x.nar.xz",
        }
        if script["json_format"]:
            # 2.33 on: each record names its format and store.
            record |= {"storeDir": "/nix/store", "version": 1}
        doc[p] = dict(sorted(record.items()))
    return doc


def nix_store(script: dict, args: list[str]) -> int:
    if args[:2] == ["--check-validity", "--print-invalid"]:
        # Nothing is built here: every path asked about is invalid, except derivations.
        for p in args[2:]:
            if not p.endswith(".drv"):
                print(p)
        return 0
    if args[:2] == ["--query", "--outputs"]:
        print(script["outputs"][args[2]])
        return 0
    print(f"stand-in: unexpected nix-store {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
