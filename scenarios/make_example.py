"""Regenerate the bundled example: a NixOS-sized system and an upgrade of it.

    python3 scenarios/make_example.py

Writes scenarios/examples/nixos-{current,target}.json in the format of Nix 2.19+
`nix path-info --json --recursive` (an object keyed by store path). Fixed seed: the
files only change when the generator does.
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.readers import dump_path_info_json
from solver.synthetic import generate_pair

HERE = Path(__file__).resolve().parent / "examples"


def write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    pair = generate_pair(1000, 120, changed=0.35, seed=2024)
    HERE.mkdir(exist_ok=True)
    write(HERE / "nixos-current.json", dump_path_info_json(pair.old, shape="2.19"))
    write(HERE / "nixos-target.json", dump_path_info_json(pair.new, shape="2.19"))
    print(f"current: {len(pair.old)} paths, {pair.old.size()} bytes")
    print(f"target:  {len(pair.new)} paths, {pair.new.size()} bytes")


if __name__ == "__main__":
    main()
