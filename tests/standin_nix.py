"""A stand-in for `nix` and `nix-store` that answers as one Nix version does.

Installed on PATH by tests/test_nix_versions.py under both names. It reads its script
from $BUDGET_SOLVE_STANDIN: the version line, the JSON that version's
`nix derivation show -r` (or `show-derivation`) prints, the output paths of each
derivation, what the binary cache holds, the path-info shape the version prints and
whether it has `--json-format` (path-info calls are logged to the script's "log" file).
A verb the version does not have fails as Nix fails: "error: 'X' is not a recognised
command".
"""

import json
import os
import sys


def main() -> int:
    script = json.load(open(os.environ["BUDGET_SOLVE_STANDIN"]))
    prog = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if prog == "nix-store":
        return nix_store(script, args)
    if args == ["--version"]:
        print(script["version"])
        return 0
    while args and args[0] == "--extra-experimental-features":
        args = args[2:]
    verb = args[:2] if args[:1] in (["derivation"], ["config"]) else args[:1]
    if verb not in [v.split() for v in script["verbs"]]:
        print(f"error: '{' '.join(verb)}' is not a recognised command", file=sys.stderr)
        return 1
    if verb in (["show-derivation"], ["derivation", "show"]):
        print(json.dumps(script["derivations"]))
        return 0
    if verb in (["show-config"], ["config", "show"]):
        print(json.dumps({"substituters": {"value": []}}))
        return 0
    if verb == ["path-info"]:
        with open(script["log"], "a") as log:
            log.write(" ".join(args) + "\n")
        # --json-format came with Nix 2.33, which warns when --json is given without it.
        if "--json-format" in args and not script["json_format"]:
            print("error: unrecognised flag '--json-format'", file=sys.stderr)
            return 1
        if script["json_format"] and "--json-format" not in args:
            print(
                "warning: '--json' without '--json-format' is deprecated; please specify "
                "'--json-format 1' or '--json-format 2'. This will become an error in a "
                "future release.",
                file=sys.stderr,
            )
        paths = [a for a in args[1:] if a.startswith("/")]
        print(json.dumps(path_info(script, paths)))
        return 0
    print(f"stand-in: unexpected {args}", file=sys.stderr)
    return 2


def path_info(script: dict, paths: list[str]) -> object:
    cache = script["cache"]
    if script["path_info"] == "list":
        return [
            {"path": p, "valid": True, **cache[p]} if p in cache else {"path": p, "valid": False}
            for p in paths
        ]
    return {p: ({**cache[p], "deriver": None} if p in cache else None) for p in paths}


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
