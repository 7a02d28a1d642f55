"""No host value becomes an option to ssh or a second line: every --target-host,
--build-host and fleet `ssh:` value that ssh could read as anything but its destination is
refused with one line (exit 2) before anything runs, and a good one reaches ssh as
`ssh OPTIONS... HOST -- 'COMMAND'`.

A stand-in `ssh`, first on PATH, records its argv and, as OpenSSH does, runs a
`ProxyCommand` it is given as an option: a refused value must leave it uncalled and the
canary file it would make absent. It never looks at the host name, so nothing here rests
on OpenSSH's own check of it."""

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.cli import main

ROOT = Path(__file__).resolve().parents[1]
STORE_PATH = f"/nix/store/{'a' * 32}-target-1.0"
PROFILE = "/nix/var/nix/profiles/per-user/root/env"

STANDIN = """\
#!{python}
import json, subprocess, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
options = args[: args.index("--")] if "--" in args else args
for i, arg in enumerate(options):
    value = options[i + 1] if arg == "-o" and i + 1 < len(options) else arg[2:]
    if (arg == "-o" or arg.startswith("-o")) and value.startswith("ProxyCommand="):
        subprocess.run(["sh", "-c", value.removeprefix("ProxyCommand=")], check=False)
"""


@dataclass
class Ssh:
    log: Path
    canary: Path
    # A command on PATH that makes the canary, for a ProxyCommand: one word, no `/`.
    proxy: str

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ssh:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log, canary = tmp_path / "ssh.log", tmp_path / "canary"
    standin = bin_dir / "ssh"
    standin.write_text(STANDIN.format(python=sys.executable, log=str(log)))
    proxy = bin_dir / "make-canary"
    proxy.write_text(f"#!/bin/sh\ntouch '{canary}'\n")
    for script in (standin, proxy):
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("NIX_SSHOPTS", raising=False)
    # The `apply` processes of `fleet --apply` run this tree's code too.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.chdir(tmp_path)
    return Ssh(log, canary, proxy.name)


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, list[str]]:
    """The command line in this process (a NUL cannot pass through execve): its exit
    status and its stderr lines."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--quiet"])
    code = exit_info.value.code
    return code if isinstance(code, int) else -1, capsys.readouterr().err.splitlines()


def assert_refused(code: int, lines: list[str], ssh: Ssh, value: str) -> None:
    """Exit 2, one printable `error:` line about the host that shows every control
    character of `value` escaped, and nothing run through ssh."""
    assert not ssh.canary.exists(), lines
    assert ssh.calls() == [], lines
    assert code == 2, lines
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("error: ") and "host" in line, line
    assert line.isprintable(), line
    for c in value:
        if not c.isprintable():
            assert repr(c)[1:-1] in line, line


# (id, the value given for a host; PROXY: the command that makes the canary)
BAD_HOSTS = [
    ("option", "-oProxyCommand=PROXY"),
    ("option-in-ssh-uri", "ssh://-oProxyCommand=PROXY"),
    ("option-in-ssh-ng-uri", "ssh-ng://-oProxyCommand=PROXY"),
    ("option-as-user", "-oProxyCommand=PROXY@host"),
    ("option-as-host-after-user", "ssh://root@-oProxyCommand=PROXY"),
    ("newline", "host\n-oProxyCommand=PROXY"),
    ("nul", "host\0-oProxyCommand=PROXY"),
    ("escape", "host\x1b[2J"),
    ("tab", "host\t-oProxyCommand=PROXY"),
    ("space", "host -oProxyCommand=PROXY"),
    ("delete", "host\x7f"),
    ("c1-control", "host\x9b2J"),
    ("line-separator", "host\u2028x"),
    ("empty", ""),
    ("empty-ssh-uri", "ssh://"),
    ("no-user", "@host"),
]


@pytest.mark.parametrize("value", [v for _, v in BAD_HOSTS], ids=[i for i, _ in BAD_HOSTS])
def test_plan_refuses_a_target_host(capsys, ssh, value):
    host = value.replace("PROXY", ssh.proxy)
    code, lines = run(
        capsys, ["plan", f"--target-host={host}", "--limit", "9G", "--target", STORE_PATH]
    )
    assert_refused(code, lines, ssh, host)


@pytest.mark.parametrize(
    "value",
    [
        "-oProxyCommand=PROXY",
        "ssh://-oProxyCommand=PROXY",
        "ssh-ng://-oProxyCommand=PROXY",
        "host\n-oProxyCommand=PROXY",
        "host\0x",
        "host\x1b]0;x\x07",
    ],
    ids=["option", "ssh-uri", "ssh-ng-uri", "newline", "nul", "escape"],
)
@pytest.mark.parametrize("limit", ["1G", "auto"])
def test_apply_refuses_a_target_host(capsys, ssh, value, limit):
    host = value.replace("PROXY", ssh.proxy)
    argv = ["apply", "--yes", "--target-host", host, "--profile", PROFILE, "--target", STORE_PATH]
    code, lines = run(capsys, [*argv, "--limit", limit])
    assert_refused(code, lines, ssh, host)


@pytest.mark.parametrize(
    "value",
    ["-oProxyCommand=PROXY", "ssh://-oProxyCommand=PROXY", "ssh-ng://b\n-oProxyCommand=PROXY"],
    ids=["option", "ssh-uri", "newline"],
)
def test_apply_refuses_a_build_host(capsys, ssh, value):
    host = value.replace("PROXY", ssh.proxy)
    argv = ["apply", "--yes", "--nixos", "--flake", f"{ssh.log.parent}#box", "--limit", "9G"]
    # A good target host: nothing may run on it either before the build host is refused.
    code, lines = run(capsys, [*argv, "--target-host", "root@target", "--build-host", host])
    assert_refused(code, lines, ssh, host)


def _fleet(tmp_path: Path, *hosts: str) -> Path:
    """A fleet to roll out, with one host (its own YAML flow mapping) a line."""
    path = tmp_path / "f.yaml"
    listed = "".join(f"  - {{{h}, disk: 10G, profile: p}}\n" for h in hosts)
    path.write_text(
        f"apply: {{profile: {PROFILE}, target: {STORE_PATH}}}\n"
        "profiles:\n  p: {generate: {paths: 50}}\n"
        f"hosts:\n{listed}"
    )
    return path


# (id, the hosts' YAML (PROXY as above), what the error line says after `f.yaml:`)
BAD_FLEETS = [
    ("option", ['name: a, ssh: "-oProxyCommand=PROXY"'], "5: hosts[0].ssh: '-oProxyCommand="),
    (
        "option-in-ssh-uri",
        ['name: a, ssh: "ssh://-oProxyCommand=PROXY"'],
        "5: hosts[0].ssh: 'ssh://-oProxyCommand=",
    ),
    (
        "option-in-ssh-ng-uri",
        ["name: a, ssh: root@good", 'name: b, ssh: "ssh-ng://-oProxyCommand=PROXY"'],
        "6: hosts[1].ssh: 'ssh-ng://-oProxyCommand=",
    ),
    ("newline", ['name: a, ssh: "a\\n-oProxyCommand=PROXY"'], "5: hosts[0].ssh: 'a\\n-o"),
    ("nul", ['name: a, ssh: "a\\0b"'], "5: hosts[0].ssh: 'a\\x00b'"),
    ("escape", ['name: a, ssh: "a\\e[2Jb"'], "5: hosts[0].ssh: 'a\\x1b[2Jb'"),
    ("space", ['name: a, ssh: "a b"'], "5: hosts[0].ssh: 'a b'"),
    ("name-escape", ['name: "a\\e[2J", ssh: root@good'], "5: hosts[0].name: 'a\\x1b[2J'"),
    ("name-nul", ['name: "a\\0", ssh: root@good'], "5: hosts[0].name: 'a\\x00'"),
    ("name-newline", ['name: "a\\nb", ssh: root@good'], "5: hosts[0].name: 'a\\nb'"),
    (
        "same-address",
        ["name: a, ssh: root@Good", "name: b, ssh: ssh-ng://root@good"],
        "6: hosts[1].ssh: host 'b': 'root@good' is the address of host 'a' too "
        "(hosts[0].ssh, line 5)",
    ),
]


@pytest.mark.parametrize(
    ("hosts", "said"), [c[1:] for c in BAD_FLEETS], ids=[c[0] for c in BAD_FLEETS]
)
def test_fleet_apply_refuses_a_host(capsys, ssh, tmp_path, hosts, said):
    path = _fleet(tmp_path, *(h.replace("PROXY", ssh.proxy) for h in hosts))
    code, lines = run(capsys, ["fleet", str(path), "--apply", "--yes"])
    assert_refused(code, lines, ssh, "")
    assert lines[0].startswith(f"error: {path}:{said}"), lines[0]


def assert_destination_last(argv: list[str], address: str) -> None:
    """`OPTIONS... ADDRESS -- COMMAND`: the address after every option, `--` right after
    it, and the command one word."""
    host = argv.index(address)
    assert argv[host + 1 :][:1] == ["--"] and len(argv) == host + 3, argv
    assert argv.count("--") == 1, argv
    options = [i for i, arg in enumerate(argv) if arg.startswith("-") and arg != "--"]
    assert options and max(options) < host, argv


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("root@vps1.example", "root@vps1.example"),
        ("ssh://root@vps1.example", "root@vps1.example"),
        ("ssh-ng://vps1.example", "vps1.example"),
    ],
)
def test_a_good_host_is_the_destination_after_every_option(
    capsys, ssh, monkeypatch, value, address
):
    monkeypatch.setenv("NIX_SSHOPTS", "-p 2222 -o StrictHostKeyChecking=accept-new")
    code, lines = run(
        capsys, ["plan", "--target-host", value, "--limit", "9G", "--target", STORE_PATH]
    )
    # The stand-in prints nothing: /run/current-system resolves to nothing there.
    assert code == 2 and "not a store path" in lines[-1], lines
    # Its system, then its store directory ($NIX_STORE_DIR, else $NIX_STORE) to check
    # the answer against: every call with the destination last.
    argv, *store_dir = ssh.calls()
    for call in (argv, *store_dir):
        assert_destination_last(call, address)
    assert [call[-1].split()[-1] for call in store_dir] == ["NIX_STORE_DIR", "NIX_STORE"]
    control = next(arg for arg in argv if arg.startswith("ControlPath="))
    assert argv == [
        *("-p", "2222", "-o", "StrictHostKeyChecking=accept-new"),
        *("-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", control),
        *("-o", "ControlPersist=60", address, "--", "readlink -f -- /run/current-system"),
    ]


def test_a_fleet_host_reaches_ssh_as_the_destination(capsys, ssh, tmp_path):
    """Through `fleet --apply`, in the `apply` process it starts for the host."""
    path = _fleet(tmp_path, "name: a, ssh: ssh-ng://root@vps1.example")
    code, lines = run(capsys, ["fleet", str(path), "--apply", "--yes"])
    # The stand-in answers nothing: the host fails, and the rollout with it.
    assert code == 1, lines
    calls = ssh.calls()
    assert calls
    for argv in calls:
        assert_destination_last(argv, "root@vps1.example")


def test_the_command_line_program_refuses_an_option_as_host(ssh):
    """The installed program, as a shell would run it:
    `budget-solve plan --target-host=-oProxyCommand=touch\\ CANARY ...`."""
    program = Path(sys.executable).parent / "budget-solve"
    if not program.exists():
        pytest.skip(f"{program} is not installed")
    host = f"-oProxyCommand=touch {ssh.canary}"
    result = subprocess.run(
        [str(program), "plan", f"--target-host={host}", "--limit", "9G", "--target", STORE_PATH],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_refused(result.returncode, result.stderr.splitlines(), ssh, host)
