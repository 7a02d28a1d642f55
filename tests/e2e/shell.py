"""Running commands in the e2e tests, and measuring the store's filesystem."""

import os
import subprocess
from pathlib import Path

import pytest


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed:\n{result.stderr}")
    return result


def used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def cache_to_fill(cache: Path) -> str:
    """The store URL that `nix copy --to` fills the binary cache directory `cache` through:
    uncompressed, since what the tests build is mostly random bytes, which xz spends
    seconds on (~10 s of CPU for a test system) and cannot shrink. Readers take the
    cache as file://CACHE, whatever its compression."""
    return f"file://{cache}?compression=none"


STANDIN = Path(__file__).resolve().parents[1] / "data" / "standin"


def standin_flake(where: Path) -> Path:
    """A copy of the stand-in nixpkgs (tests/data/standin) with a flake whose
    `nixosConfigurations.box` is its new revision's system of configuration.nix."""
    import shutil

    shutil.copytree(STANDIN, where)
    system = sh("nix-instantiate", "--eval", "-E", "builtins.currentSystem").stdout.strip()
    (where / "flake.nix").write_text(
        "{ outputs = { self }: { nixosConfigurations.box = import ./new/nixos "
        f"{{ configuration = ./configuration.nix; system = {system}; }}; }}; }}\n"
    )
    return where
