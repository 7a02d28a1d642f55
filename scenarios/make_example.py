"""Regenerate the bundled example: a NixOS-sized system and an upgrade of it.

    python3 scenarios/make_example.py

Writes scenarios/examples/nixos-{current,target}.json, and user-story.json (a 10 GB VPS
with bigPackageA and bigPackageB), in the format of Nix 2.19+
`nix path-info --json --recursive` (an object keyed by store path). Fixed seed: the
files only change when the generator does.
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import random

from adapters.readers import dump_path_info_json

from solver.closure import Closure, PathInfo
from solver.synthetic import STORE, fake_hash, generate_pair

HERE = Path(__file__).resolve().parent / "examples"


def write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


GiB = 1 << 30


def user_story() -> Closure:
    """A small server's base system, two big packages and a non-vital `games`."""
    rng = random.Random(4)
    infos: list[PathInfo] = []

    def add(name: str, size: int, refs: list[str]) -> str:
        path = f"{STORE}/{fake_hash(rng)}-{name}"
        infos.append(PathInfo(path, size, tuple(sorted(refs))))
        return path

    glibc = add("glibc-2.39-52", 30 << 20, [])
    base = [add(f"{n}-1.{i}", int(2 * GiB / 20), [glibc]) for i, n in enumerate(BASE)]
    big = [
        add("bigPackageA-1.0", 2 * GiB, [glibc]),
        add("bigPackageB-1.0", 2 * GiB, [glibc]),
        add("games-1.0", 1 * GiB, [glibc]),
    ]
    path = add("system-path", 40 << 10, base + big)
    etc = add("etc", 200 << 10, [path])
    top = add("nixos-system-vps-24.05", 12 << 10, [path, etc])
    return Closure(infos, [top])


BASE = (
    "bash coreutils systemd openssh nix sudo util-linux iproute2 curl openssl "
    "gnugrep gnused findutils less nano htop tmux git python3 perl"
).split()


def main() -> None:
    pair = generate_pair(1000, 120, changed=0.35, seed=2024)
    HERE.mkdir(exist_ok=True)
    write(HERE / "nixos-current.json", dump_path_info_json(pair.old, shape="2.19"))
    write(HERE / "nixos-target.json", dump_path_info_json(pair.new, shape="2.19"))
    story = user_story()
    write(HERE / "user-story.json", dump_path_info_json(story, shape="2.19"))
    print(f"user story: {len(story)} paths, {story.size()} bytes")
    print(f"current: {len(pair.old)} paths, {pair.old.size()} bytes")
    print(f"target:  {len(pair.new)} paths, {pair.new.size()} bytes")


if __name__ == "__main__":
    main()
