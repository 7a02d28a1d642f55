"""A local flake is evaluated as the nix command line and nixos-rebuild evaluate it: in a
git repository, untracked files are invisible and `self.rev` is set (real Nix)."""

import subprocess

import pytest

from adapters.apply.nixos_inputs import Flake
from adapters.nixstore import builds
from adapters.nixstore.host import LOCAL
from tests.e2e.shell import sh

pytestmark = [pytest.mark.nix, pytest.mark.every_nix]

FLAKE = """{ outputs = { self }: {
  seen = builtins.pathExists ./untracked;
  revision = self.rev or "dirty";
}; }
"""


def _eval(*argv: str) -> str:
    return sh(*builds.FLAKES, "eval", "--raw", *argv).stdout.strip()


@pytest.mark.parametrize("in_git", [True, False])
def test_get_flake_sees_what_the_command_line_sees(nix_store, tmp_path, in_git):
    flake = tmp_path / "config"
    flake.mkdir()
    (flake / "flake.nix").write_text(FLAKE)
    if in_git:
        git = ["git", "-C", str(flake), "-c", "user.email=t@t", "-c", "user.name=t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "flake.nix"], check=True)
        subprocess.run([*git, "commit", "-qm", "config"], check=True)
    (flake / "untracked").write_text("not in git\n")
    ref = Flake.parse(f"{flake}#box", LOCAL).ref
    shown = 's: if s then "seen" else "unseen"'
    expr = f'let f = builtins.getFlake "{ref}"; in ({shown}) f.seen + " " + f.revision'
    ours = _eval("--impure", "--expr", expr)
    theirs = _eval("--apply", shown, f"{flake}#seen") + " " + _eval(f"{flake}#revision")
    assert ours == theirs
    # In git, the untracked file is invisible and the revision is the commit's.
    assert ours == "seen dirty" if not in_git else ours.startswith("unseen ")
