"""A throwaway Nix store in tmp_path, as Nix's own test suite makes one.

NIX_STORE_DIR, NIX_STATE_DIR, NIX_LOG_DIR and NIX_CONF_DIR point into tmp_path and are set
with monkeypatch, so the code under test inherits them exactly as it would a user's.
Without Nix the tests skip; with CI set they fail instead, because there they must run.

Which Nix: tests/e2e/versions.py. `nix_version` is the one a test runs on, put first on
PATH; `host_nix` the one of its SSH test host (the same, unless a test pairs two).
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.nixstore import ssh
from adapters.nixstore.versions import forget_versions
from tests.e2e import versions
from tests.e2e.shell import sh
from tests.e2e.versions import Nix

NIX_PROGRAMS = ("nix", "nix-build", "nix-store", "nix-instantiate")

NIX_CONF = """\
sandbox = false
build-users-group =
experimental-features = nix-command
substituters =
"""


# Modules run on every Nix as if marked `every_nix`: sizing a target from its derivations
# (the JSON of `derivation show` changed shape three times between 2.8 and 2.34).
EVERY_NIX_FILES = ("test_estimate.py",)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test on a store runs on the chosen Nix; with the matrix, an `every_nix` test
    also on each other Nix (ids `nix-2.34` and so on). A test that parametrizes
    `nix_version` itself (a pair of versions) is left as it is."""
    if "nix_version" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        names = names.split(",") if isinstance(names, str) else names
        if "nix_version" in (n.strip() for n in names):
            return
    chosen = versions.selection()
    names = [chosen.primary]
    every = metafunc.definition.get_closest_marker("every_nix") is not None
    if every or metafunc.definition.path.name in EVERY_NIX_FILES:
        names += chosen.others
    metafunc.parametrize("nix_version", names, indirect=True, ids=[f"nix-{n}" for n in names])


def use_nix(name: str) -> Nix:
    """The Nix named `name`; a failure under CI when it is not set up, else a skip."""
    here = versions.available()
    if name in here:
        return here[name]
    reason = versions.selection().missing or f"Nix {name} is not set up: {versions.SETUP_HINT}"
    if versions.under_ci():
        pytest.fail(f"{reason}; CI is set, and under CI the Nix tests must run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def nix_version(request) -> Nix:
    """The Nix this test runs on (see `pytest_generate_tests`)."""
    return use_nix(getattr(request, "param", versions.selection().primary))


@pytest.fixture
def host_nix(request, nix_version) -> Nix:
    """The Nix of the test's SSH host: this test's own, unless parametrized."""
    name = getattr(request, "param", None)
    return nix_version if name is None else use_nix(name)


def require_nix() -> None:
    missing = [p for p in NIX_PROGRAMS if shutil.which(p) is None]
    if not missing:
        return
    reason = f"Nix is not installed ({', '.join(missing)} not found): apt-get install nix-bin"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; CI is set, and under CI the Nix tests must run", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class NixStore:
    """A throwaway store: its directories, and helpers that run the real nix commands."""

    root: Path
    store_dir: Path
    state_dir: Path
    nix: Nix

    @property
    def db(self) -> Path:
        return self.state_dir / "db" / "db.sqlite"

    def run(self, *argv: str) -> str:
        """Run a command in this store's environment; its stdout. Fails the test on error."""
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def write(self, name: str, text: str) -> Path:
        file = self.root / name
        file.write_text(text)
        return file

    def build(self, expr: Path, attr: str, out_link: Path) -> str:
        """nix-build EXPR -A ATTR -o OUT_LINK; the store path built."""
        return self.run("nix-build", str(expr), "-A", attr, "-o", str(out_link)).strip()


@pytest.fixture
def nix_store(tmp_path, monkeypatch, nix_version) -> Iterator[NixStore]:
    monkeypatch.setenv("PATH", nix_version.path(os.environ.get("PATH", os.defpath)))
    require_nix()
    root = tmp_path
    conf_dir = root / "etc"
    conf_dir.mkdir()
    (conf_dir / "nix.conf").write_text(NIX_CONF)
    env = {
        "NIX_STORE_DIR": root / "store",
        "NIX_STATE_DIR": root / "var",
        "NIX_LOG_DIR": root / "log",
        "NIX_CONF_DIR": conf_dir,
        # Keep the user's ~/.config/nix and ~/.cache/nix out of it.
        "XDG_CONFIG_HOME": root / "xdg-config",
        "XDG_CACHE_HOME": root / "xdg-cache",
        "XDG_DATA_HOME": root / "xdg-data",
        "XDG_STATE_HOME": root / "xdg-state",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    # A daemon would serve its own store, not ours.
    monkeypatch.delenv("NIX_REMOTE", raising=False)
    monkeypatch.delenv("NIX_STORE", raising=False)
    monkeypatch.delenv("NIX_USER_CONF_FILES", raising=False)
    monkeypatch.delenv("NIX_PATH", raising=False)
    # The tool asks each host for its Nix version once per process; this test's may differ.
    forget_versions()
    ssh.forget_environments()
    yield NixStore(root=root, store_dir=root / "store", state_dir=root / "var", nix=nix_version)
    forget_versions()
    ssh.forget_environments()


@pytest.fixture
def small_store(nix_store, tmp_path, monkeypatch):
    """A store whose directory is a tmpfs; yields (store, remount(size))."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("a tmpfs needs root, and under CI this test must run")
        pytest.skip("mounting a tmpfs needs root")
    store = nix_store.store_dir
    store.mkdir(exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(store))
    conf = nix_store.root / "etc" / "nix.conf"
    conf.write_text(conf.read_text() + "require-sigs = false\n")
    monkeypatch.setenv("BUDGET_SOLVE_STATE_DIR", str(tmp_path / "bs-state"))

    def remount(size: int) -> None:
        sh("mount", "-o", f"remount,size={size}", str(store))

    try:
        yield nix_store, remount
    finally:
        sh("umount", "-l", str(store), check=False)


@pytest.fixture
def remote_host(nix_store, host_nix, tmp_path, monkeypatch):
    """A second host over SSH with a store of its own at the same paths (tests/e2e/remote.py)
    and the Nix `host_nix` on its login's PATH."""
    from tests.e2e import remote

    nix_store.store_dir.mkdir(exist_ok=True)
    nix_store.state_dir.mkdir(exist_ok=True)
    host, pid = remote.start(
        tmp_path / "remote", nix_store.store_dir, nix_store.state_dir, monkeypatch, nix=host_nix
    )
    try:
        yield host
    finally:
        remote.stop(host, pid)


@pytest.fixture
def two_remote_hosts(nix_store, host_nix, tmp_path, monkeypatch):
    """Two hosts over SSH (127.0.0.1 and 127.0.0.2, one port, one key), each with a store
    of its own at the same paths and the Nix `host_nix`."""
    from tests.e2e import remote

    nix_store.store_dir.mkdir(exist_ok=True)
    nix_store.state_dir.mkdir(exist_ok=True)
    first, first_pid = remote.start(
        tmp_path / "remote-a", nix_store.store_dir, nix_store.state_dir, monkeypatch, nix=host_nix
    )
    try:
        second, second_pid = remote.start(
            tmp_path / "remote-b",
            nix_store.store_dir,
            nix_store.state_dir,
            monkeypatch,
            address="127.0.0.2",
            like=(first.port, first.user_key),
            nix=host_nix,
        )
        try:
            yield first, second
        finally:
            remote.stop(second, second_pid)
    finally:
        remote.stop(first, first_pid)
