"""Regenerate the bundled example: a NixOS-sized system and an upgrade of it.

    python3 scenarios/make_example.py

Writes scenarios/examples/nixos-{current,target}.json in the format of Nix 2.19+
`nix path-info --json --recursive` (an object keyed by store path). Fixed seed: the
files only change when the generator does.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solver.closure import Closure  # noqa: E402
from solver.synthetic import generate_pair  # noqa: E402

HERE = Path(__file__).resolve().parent / "examples"


def path_info_219(closure: Closure) -> dict[str, object]:
    return {
        info.path: {
            "narSize": info.nar_size,
            "references": sorted(info.references),
            "deriver": None,
            "valid": True,
        }
        for info in sorted(closure.infos(), key=lambda i: i.path)
    }


def write(path: Path, obj: object) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    pair = generate_pair(1000, 120, changed=0.35, seed=2024)
    HERE.mkdir(exist_ok=True)
    write(HERE / "nixos-current.json", path_info_219(pair.old))
    write(HERE / "nixos-target.json", path_info_219(pair.new))
    print(f"current: {len(pair.old)} paths, {pair.old.size()} bytes")
    print(f"target:  {len(pair.new)} paths, {pair.new.size()} bytes")


if __name__ == "__main__":
    main()
