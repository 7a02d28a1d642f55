"""A second host for the tests: an sshd on 127.0.0.1 (Debian's openssh-server) with its
own host key and config, whose one login runs every command in a mount namespace where
the store and state directories of the test's throwaway store are the remote's own. The
two stores share their paths (as `nix copy` needs) and nothing else; the remote store is
a tmpfs of its own size."""

import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.nixstore.ssh import Ssh
from tests.e2e.shell import sh
from tests.e2e.versions import Nix

SSHD = Path("/usr/sbin/sshd")


@dataclass
class RemoteHost:
    address: str
    store_dir: Path
    state_dir: Path
    backing: Path
    bin: Path
    port: int
    user_key: Path
    nix: Nix

    def run(self, *argv: str) -> str:
        """Run a command on the host; its stdout. Fails the test on error."""
        ssh = [*Ssh.parse(self.address).ssh_argv(), "--", shlex.join(argv)]
        result = subprocess.run(ssh, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"on the host: {shlex.join(argv)} failed:\n{result.stderr}")
        return result.stdout

    def setenv(self, name: str, value: str) -> None:
        """Set a variable in every later login's environment (the host's own env file)."""
        with (self.bin.parent / "env").open("a") as env:
            env.write(f"export {name}={shlex.quote(value)}\n")

    def remount(self, size: int) -> None:
        sh("mount", "-o", f"remount,size={size}", str(self.backing / "store"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    root: Path,
    store_dir: Path,
    state_dir: Path,
    monkeypatch,
    *,
    address: str = "127.0.0.1",
    like: tuple[int, Path] | None = None,
    nix: Nix,
) -> tuple[RemoteHost, int]:
    """The host, and its sshd's pid (the caller stops it).

    `like`: the port and user key of a host started before; this one listens on another
    loopback address with them, so that one $NIX_SSHOPTS reaches both. `nix`: the Nix on
    the login's PATH, whatever this side runs: `nix copy` reaches it there (`nix-store
    --serve` for ssh://, `nix-daemon --stdio` for ssh-ng://), as every command does.
    """
    if os.geteuid() != 0 or not SSHD.exists():
        if os.environ.get("CI"):
            pytest.fail("a second host needs root and openssh-server, and under CI it must run")
        pytest.skip("a second host needs root and openssh-server")
    root.mkdir()
    # Programs of the host's own, before its PATH (a stand-in sudo, say).
    (root / "bin").mkdir()
    # A temporary directory of its own: what a run leaves in the host's is its alone,
    # whatever else runs here at the same time.
    (root / "tmp").mkdir()
    backing = root / "disk"
    (backing / "store").mkdir(parents=True)
    (backing / "var").mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(backing / "store"))
    for key in ("host", "user") if like is None else ("host",):
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key))
    port, user_key = like if like is not None else (_free_port(), root / "user")
    # What the login runs: the remote's store and state over the test store's paths.
    env = " ".join(
        f"{name}={shlex.quote(os.environ[name])}"
        for name in ("NIX_STORE_DIR", "NIX_STATE_DIR", "NIX_CONF_DIR", "XDG_CACHE_HOME")
    )
    # The host's own programs first (they may wrap its Nix's), then its Nix.
    path = "".join(f"{d}:" for d in (root / "bin", nix.bin) if d is not None)
    mounts = (
        f"mount --bind {backing / 'store'} {store_dir} && "
        f"mount --bind {backing / 'var'} {state_dir} && "
        f'export {env} NIX_LOG_DIR={root / "log"} TMPDIR={root / "tmp"} PATH={path}"$PATH" && '
        f"if [ -f {root / 'env'} ]; then . {root / 'env'}; fi && "
        'exec sh -c "$SSH_ORIGINAL_COMMAND"'
    )
    login = root / "login.sh"
    login.write_text(
        f"#!/bin/sh\nexec unshare --mount --propagation private sh -c {shlex.quote(mounts)}\n"
    )
    login.chmod(0o755)
    public = user_key.with_suffix(".pub").read_text().strip()
    keys = root / "authorized_keys"
    keys.write_text(f'command="{login}",no-pty,no-port-forwarding {public}\n')
    keys.chmod(0o600)
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {root / 'host'}\n"
        f"AuthorizedKeysFile {keys}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n"
        f"UsePAM no\nPidFile {root / 'sshd.pid'}\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation directory
    sh(str(SSHD), "-f", str(config), "-E", str(root / "sshd.log"))
    # sshd creates its pid file before it writes the pid: wait for the number.
    for _ in range(200):
        written = (root / "sshd.pid").read_text().strip() if (root / "sshd.pid").exists() else ""
        if written.isdigit():
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"sshd did not start: {(root / 'sshd.log').read_text()}")
    pid = int(written)
    monkeypatch.setenv(
        "NIX_SSHOPTS",
        f"-p {port} -i {user_key} -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    )
    host = RemoteHost(
        f"root@{address}", store_dir, state_dir, backing, root / "bin", port, user_key, nix
    )
    host.run("true")
    return host, pid


def stop(host: RemoteHost, pid: int) -> None:
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass
    subprocess.run(["umount", "-l", str(host.backing / "store")], check=False)
