"""The nix verbs: the exact argv each one runs, and what it makes of the output."""

import json
import shlex
import subprocess

import pytest

from adapters.nixstore import builds, nix, process, ssh, versions
from adapters.nixstore.builds import NixFlags
from adapters.nixstore.formats.pathinfo import dump_path_info_json
from adapters.nixstore.host import LOCAL
from adapters.nixstore.ssh import Ssh
from solver.closure import Closure, PathInfo
from solver.errors import ClosureError, InputError, NixError
from tests.helpers import fake_path

GLIBC = fake_path("glibc-2.39-52")
APP = fake_path("app-1.0")
DRV = fake_path("app-1.0.drv")
NIX = ["nix", "--extra-experimental-features", "nix-command"]


class FakeRun:
    """Stands in for process.run: records each call, answers with canned stdout."""

    def __init__(self, stdout: str = "") -> None:
        self.stdout = stdout
        self.calls: list[tuple[list[str], dict[str, object]]] = []

    def __call__(self, argv, **kwargs):
        # What the call says: the options it leaves at their defaults (None) are not kept.
        self.calls.append((list(argv), {k: v for k, v in kwargs.items() if v is not None}))
        return subprocess.CompletedProcess(list(argv), 0, self.stdout, "")

    @property
    def argv(self) -> list[str]:
        assert len(self.calls) == 1
        return self.calls[0][0]


@pytest.fixture
def fake(monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(process, "run", run)
    # The argv below are Nix 2.8's (CI's): no `--json-format` (tests/test_nix_versions.py).
    v28 = versions.parse_version("nix (Nix) 2.8.0")
    monkeypatch.setattr(nix, "version", lambda host: v28)
    return run


def closure_json(shape="2.19") -> str:
    infos = [PathInfo(GLIBC, 30), PathInfo(APP, 5, (APP, GLIBC), DRV)]
    return dump_path_info_json(Closure(infos), shape)


@pytest.mark.parametrize(
    ("kwargs", "argv"),
    [
        ({}, [*NIX, "path-info", "--json", "--recursive", APP]),
        ({"recursive": False}, [*NIX, "path-info", "--json", APP]),
        (
            {"store": "file:///tmp/cache"},
            [*NIX, "path-info", "--json", "--recursive", "--store", "file:///tmp/cache", APP],
        ),
        (
            {"recursive": False, "store": "https://cache.nixos.org"},
            [*NIX, "path-info", "--json", "--store", "https://cache.nixos.org", APP],
        ),
    ],
)
def test_path_info_argv(fake, kwargs, argv):
    fake.stdout = closure_json()
    nix.path_info(LOCAL, [APP], **kwargs)
    assert fake.argv == argv
    assert fake.calls[0][1] == {"check": True}


@pytest.mark.parametrize("shape", ["list", "2.19", "v2"])
def test_path_info_parses_every_shape(fake, shape):
    fake.stdout = closure_json(shape)
    infos = sorted(nix.path_info(LOCAL, [APP]), key=lambda i: i.path)
    assert infos == sorted(
        [PathInfo(GLIBC, 30), PathInfo(APP, 5, (GLIBC,), DRV)], key=lambda i: i.path
    )


def test_path_info_several_paths(fake):
    fake.stdout = closure_json()
    nix.path_info(LOCAL, [APP, GLIBC], recursive=False)
    assert fake.argv == [*NIX, "path-info", "--json", APP, GLIBC]


def test_path_info_of_nothing_runs_nothing(fake):
    assert nix.path_info(LOCAL, []) == []
    assert fake.calls == []


def test_path_info_malformed_output(fake):
    fake.stdout = "[{"
    with pytest.raises(NixError, match=f"nix path-info {APP} printed malformed JSON"):
        nix.path_info(LOCAL, [APP])


def test_path_info_invalid_path(fake):
    # Nix 2.8 without --recursive: {"path": ..., "valid": false} and exit code 0.
    fake.stdout = json.dumps([{"path": APP, "valid": False}])
    with pytest.raises(ClosureError, match=f"not valid in the store .*{APP}"):
        nix.path_info(LOCAL, [APP], recursive=False)


def test_closure(fake):
    fake.stdout = closure_json()
    closure = nix.closure(LOCAL, APP)
    assert closure.roots == (APP,)
    assert closure.size() == 35
    assert fake.argv == [*NIX, "path-info", "--json", "--recursive", APP]


def test_closure_of_a_link(fake, tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("NIX_STORE_DIR", str(store))
    app = f"{store}/{APP.rpartition('/')[2]}"
    glibc = f"{store}/{GLIBC.rpartition('/')[2]}"
    (store / app.rpartition("/")[2]).write_text("")
    link = tmp_path / "result"
    link.symlink_to(app)
    fake.stdout = dump_path_info_json(Closure([PathInfo(glibc, 1), PathInfo(app, 2, (glibc,))]))
    closure = nix.closure(LOCAL, str(link), store="file:///c")
    assert closure.roots == (app,)
    assert fake.argv[-3:] == ["--store", "file:///c", str(link)]


def test_closure_missing_root_in_output(fake):
    fake.stdout = dump_path_info_json(Closure([PathInfo(GLIBC, 1)]))
    with pytest.raises(NixError, match=f"does not list {APP}"):
        nix.closure(LOCAL, APP)


def test_query_outputs(fake):
    fake.stdout = f"{APP}\n{APP}-man\n"
    assert nix.query_outputs(LOCAL, DRV) == [APP, f"{APP}-man"]
    assert fake.argv == ["nix-store", "--query", "--outputs", DRV]


def test_query_outputs_empty(fake):
    with pytest.raises(NixError, match="printed no output paths"):
        nix.query_outputs(LOCAL, DRV)


def test_realise(fake):
    fake.stdout = f"{APP}\n"
    assert nix.realise(LOCAL, DRV) == [APP]
    assert fake.argv == ["nix-store", "--realise", DRV]
    assert fake.calls[0][1] == {"check": True}


def test_invalid_paths(fake):
    fake.stdout = f"{APP}\n"
    assert nix.invalid_paths(LOCAL, [APP, GLIBC]) == [APP]
    assert fake.argv == ["nix-store", "--check-validity", "--print-invalid", APP, GLIBC]
    assert nix.invalid_paths(LOCAL, []) == []  # no paths: nothing to ask
    assert len(fake.calls) == 1


def test_gc_roots(fake):
    fake.stdout = (
        f"/nix/var/nix/profiles/system-41-link -> {APP}\n"
        f"/home/me/result -> {GLIBC}\n"
        f"{{censored}} -> {APP}\n"
        f"{{temp:1234}} -> {GLIBC}\n"
        f"{{memory:7}} -> {GLIBC}\n"
        f"{{lsof}} -> {GLIBC}\n"
        f"/proc/1/maps -> {GLIBC}\n"
        f"/proc/1/environ -> {APP}\n"
        "\n"
        f"/home/me/odd -> name -> {GLIBC}\n"
    )
    assert nix.gc_roots(LOCAL) == {
        "/nix/var/nix/profiles/system-41-link": APP,
        "/home/me/result": GLIBC,
        "/home/me/odd -> name": GLIBC,
    }
    assert fake.argv == ["nix-store", "--gc", "--print-roots"]


@pytest.mark.parametrize("line", ["no arrow here", f" -> {APP}", "/x/link -> relative"])
def test_gc_roots_unreadable_line(line):
    with pytest.raises(NixError, match="cannot read line 2"):
        nix.parse_gc_roots(f"/a -> {APP}\n{line}\n")


# Printed by Nix 2.34.8 (Debian sid) for roots made with `nix-store --add-root`: link
# names in C++'s std::quoted, `"` and `\\` escaped; a tab and UTF-8 as they are.
NIX_234_ROOTS = (
    '"/tmp/n34/myroot" -> /tmp/n34/store/ddv5v0ys0i5hw3nkn6a1bdzvrzswmdvp-f\n'
    '"/tmp/n34/tab\t\u00e9" -> /tmp/n34/store/ddv5v0ys0i5hw3nkn6a1bdzvrzswmdvp-f\n'
    '"/tmp/n34/var/profiles/p-1-link" -> /tmp/n34/store/ddv5v0ys0i5hw3nkn6a1bdzvrzswmdvp-f\n'
    '"/tmp/n34/we\\"ird \\\\ name -> x" -> /tmp/n34/store/ddv5v0ys0i5hw3nkn6a1bdzvrzswmdvp-f\n'
    '"{memory:4}" -> /tmp/n34/store/ddv5v0ys0i5hw3nkn6a1bdzvrzswmdvp-f\n'
)


def test_gc_roots_quoted_as_nix_2_34_prints_them():
    f = "/tmp/n34/store/ddv5v0ys0i5hw3nkn6a1bdzvrzswmdvp-f"
    assert nix.parse_gc_roots(NIX_234_ROOTS) == {
        "/tmp/n34/myroot": f,
        "/tmp/n34/tab\t\u00e9": f,
        "/tmp/n34/var/profiles/p-1-link": f,
        '/tmp/n34/we"ird \\ name -> x': f,
    }


@pytest.mark.parametrize("line", ['"/unclosed -> /nix/store/x', '"/a"/nix/store/x', '"/a" -> x'])
def test_gc_roots_badly_quoted(line):
    with pytest.raises(NixError, match="cannot read line 1"):
        nix.parse_gc_roots(line)


def test_gc_roots_empty():
    assert nix.parse_gc_roots("") == {}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "/nix/store"),
        ({"NIX_STORE_DIR": "/tmp/t/store"}, "/tmp/t/store"),
        ({"NIX_STORE_DIR": "/tmp/t/store/"}, "/tmp/t/store"),
        ({"NIX_STORE_DIR": ""}, "/nix/store"),
        ({"NIX_STORE": "/old/store"}, "/old/store"),
        ({"NIX_STORE_DIR": "/new", "NIX_STORE": "/old"}, "/new"),
    ],
)
def test_store_dir(monkeypatch, env, expected):
    for name in ("NIX_STORE_DIR", "NIX_STORE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert LOCAL.store_dir() == expected


@pytest.mark.parametrize(
    ("state_dir", "expected"),
    [
        (None, "/nix/var/nix/db/db.sqlite"),
        ("", "/nix/var/nix/db/db.sqlite"),
        ("/x/var", "/x/var/db/db.sqlite"),
    ],
)
def test_state_db_path(monkeypatch, state_dir, expected):
    monkeypatch.delenv("NIX_STATE_DIR", raising=False)
    if state_dir is not None:
        monkeypatch.setenv("NIX_STATE_DIR", state_dir)
    assert str(nix.state_db_path()) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (APP, APP),
        (f"{APP}/bin/app", APP),
        ("/nix/store", None),
        ("/nix/storefront/x", None),
        ("/etc/passwd", None),
    ],
)
def test_resolve_store_path(monkeypatch, path, expected):
    monkeypatch.delenv("NIX_STORE_DIR", raising=False)
    monkeypatch.delenv("NIX_STORE", raising=False)
    assert nix.resolve_store_path(LOCAL, path) == expected


def test_verbs_always_check(fake):
    fake.stdout = f"{APP}\n"
    nix.query_outputs(LOCAL, DRV)
    nix.realise(LOCAL, DRV)
    nix.invalid_paths(LOCAL, [APP])
    fake.stdout = ""
    nix.gc_roots(LOCAL)
    assert all(kwargs.get("check") is True for _, kwargs in fake.calls)


def test_a_host_may_name_its_store_protocol():
    assert Ssh.parse("root@vps1") == Ssh("root@vps1", "ssh")
    assert Ssh.parse("ssh://me@vps2").store_uri == "ssh://me@vps2"
    # The copies to that host go through its nix-daemon.
    assert Ssh.parse("ssh-ng://me@vps3").store_uri == "ssh-ng://me@vps3"
    assert Ssh.parse("ssh-ng://me@vps3").ssh_argv()[-1] == "me@vps3"
    # Named without one, it is plain ssh: nothing carries over from another value.
    assert Ssh.parse("me@vps3").store_uri == "ssh://me@vps3"
    for bad in ("ftp://vps1", "ssh://", "ssh-ng://vps1/store"):
        with pytest.raises(InputError, match="expected \\[USER@\\]HOST"):
            Ssh.parse(bad)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("vps1", "vps1"),
        ("root@vps1.example", "root@vps1.example"),
        ("ssh://me@vps2", "me@vps2"),
        ("ssh-ng://me@vps3", "me@vps3"),
        ("deploy@192.0.2.7", "deploy@192.0.2.7"),
        ("root@fe80::1%eth0", "root@fe80::1%eth0"),
        ("a-b@c-d", "a-b@c-d"),
    ],
)
def test_check_host_gives_the_address(host, address):
    assert ssh.check_host(host) == address


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("-oProxyCommand=x", "host '-oProxyCommand=x': a host address may not start with '-'"),
        ("ssh://-oProxyCommand=x", "host 'ssh://-oProxyCommand=x': a host address may not start"),
        ("ssh-ng://-l", "host 'ssh-ng://-l': a host address may not start with '-'"),
        ("-root@vps1", "host '-root@vps1': a host address may not start with '-'"),
        ("root@-vps1", "host 'root@-vps1': a host name may not start with '-'"),
        ("vps1\n-oX=y", "host 'vps1\\n-oX=y': a host address may not contain whitespace"),
        ("vps1\0", "host 'vps1\\x00': a host address may not contain whitespace"),
        ("vps1\x1b[2J", "host 'vps1\\x1b[2J': a host address may not contain whitespace"),
        ("vps1\x85", "host 'vps1\\x85': a host address may not contain whitespace"),
        ("vps 1", "host 'vps 1': a host address may not contain whitespace"),
        ("", "host '': a host address may not be empty"),
        ("@vps1", "host '@vps1': no user before '@'"),
        ("root@", "host 'root@': no host after '@'"),
        ("ftp://\x1b[2J", "host 'ftp://\\x1b[2J': expected [USER@]HOST"),
    ],
)
def test_check_host_refuses_what_ssh_would_misread(host, message):
    with pytest.raises(InputError) as e:
        ssh.check_host(host)
    assert str(e.value).startswith(message)
    assert str(e.value).isprintable()
    # The same check wherever a host is named: a host value is made only through it.
    with pytest.raises(InputError):
        Ssh.parse(host)


def test_check_host_names_the_option():
    with pytest.raises(InputError, match=r"^--build-host '-oX': a host address may not start"):
        ssh.check_host("-oX", "--build-host")
    with pytest.raises(InputError, match=r"^'-oX': a host address may not start"):
        ssh.check_host("-oX", None)


def test_a_remote_command_follows_the_destination_and_one_double_dash(monkeypatch, fake):
    """`ssh [NIX_SSHOPTS...] -o ... HOST -- 'COMMAND'`, as nixos-rebuild-ng runs it."""
    monkeypatch.setenv("NIX_SSHOPTS", "-p 2222 -o Compression=yes")
    host = Ssh.parse("ssh-ng://root@vps1", sudo=True)
    fake.stdout = f"{APP}\n"
    host.run(["readlink", "-f", "--", "/run/current-system"], check=True)
    assert fake.argv == [
        *ssh_prefix(host),
        "sudo --non-interactive -- readlink -f -- /run/current-system",
    ]
    assert fake.argv[:7] == ["ssh", "-p", "2222", "-o", "Compression=yes", "-o", "BatchMode=yes"]


def ssh_prefix(host: Ssh) -> list[str]:
    """`ssh OPTIONS... HOST --`: what every command on `host` starts with."""
    control = f"ControlPath={ssh._control_dir()}/%C"
    return [
        "ssh",
        *host.options,
        *("-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", control),
        *("-o", "ControlPersist=60", host.address, "--"),
    ]


def test_each_host_has_its_own_nix_version(monkeypatch):
    """A --target-host's Nix answering first must not give this machine its flags."""

    asked = []

    def run(argv, **kwargs):
        where = kwargs.get("where")
        asked.append(where)
        text = "nix (Nix) 2.34.8" if where else "nix (Lix, like Nix) 2.91.1"
        return subprocess.CompletedProcess(argv, 0, stdout=text + "\n", stderr="")

    monkeypatch.setattr(process, "run", run)
    vps1 = Ssh.parse("root@vps1")
    versions.forget_versions()
    try:
        assert versions.json_format(versions.version(vps1)) == ["--json-format", "1"]
        here = versions.version(LOCAL)
        assert here.lix and versions.json_format(here) == []
        versions.version(vps1)
        versions.version(LOCAL)
        assert asked == ["root@vps1", None]  # once per host
    finally:
        versions.forget_versions()


# -- the remote verbs: the exact argv each runs, here and through ssh ------------------------

FLAGS = NixFlags(("--max-jobs", "2"))


def test_copy_to_a_host_by_its_protocol(fake):
    builds.copy_to(Ssh.parse("ssh-ng://root@vps1"), [APP], FLAGS)
    assert fake.argv == [*NIX, "copy", "--to", "ssh-ng://root@vps1", APP]
    assert fake.calls[0][1]["check"] is True


def test_copy_from_a_build_host_substitutes_on_the_destination(fake):
    builds.copy_to(None, [APP], FLAGS, source=Ssh.parse("builder"))
    assert fake.argv == [
        *NIX,
        "copy",
        "--from",
        "ssh://builder",
        "--substitute-on-destination",
        APP,
    ]


def test_copy_of_derivations(fake):
    builds.copy_to(Ssh.parse("root@vps1"), [DRV], FLAGS, derivation=True)
    assert fake.argv == [*NIX, "copy", "--derivation", "--to", "ssh://root@vps1", DRV]


def test_ship_copies_what_this_machine_has(fake):
    fake.stdout = f"{GLIBC}\n"  # --print-invalid: this machine lacks glibc
    builds.ship(Ssh.parse("root@vps1"), [APP, GLIBC], FLAGS)
    assert [argv for argv, _ in fake.calls] == [
        ["nix-store", "--check-validity", "--print-invalid", APP, GLIBC],
        [*NIX, "copy", "--to", "ssh://root@vps1", APP],
    ]


def test_ship_to_this_machine_runs_nothing(fake):
    builds.ship(LOCAL, [APP], FLAGS)
    assert fake.calls == []


def test_built_on_a_build_host(fake, monkeypatch):
    host = Ssh.parse("builder")
    outputs = iter(["", "/tmp/budget-solve-build.X\n", f"{APP}\n", ""])
    monkeypatch.setattr(
        process,
        "run",
        lambda argv, **kw: (
            fake.calls.append((list(argv), kw))
            or subprocess.CompletedProcess(argv, 0, next(outputs), "")
        ),
    )
    monkeypatch.setattr(Ssh, "realpath", lambda self, path: APP)
    with builds.built_on(host, DRV, FLAGS, substituters=["https://c"]) as built:
        assert built == APP
    root = "/tmp/budget-solve-build.X/result"
    realise = "nix-store --realise " + DRV + f" --add-root {root} "
    realise += "--option substituters https://c --max-jobs 2"
    assert [argv for argv, _ in fake.calls] == [
        [*NIX, "copy", "--derivation", "--to", "ssh://builder", DRV],
        [*ssh_prefix(host), "mktemp -d -t budget-solve-build.XXXXXX"],
        [*ssh_prefix(host), realise],
        [*ssh_prefix(host), "rm -rf -- /tmp/budget-solve-build.X"],
    ]


def test_host_closure_reads_the_link_on_the_host(fake, monkeypatch):
    host = Ssh.parse("root@vps1")
    ssh.forget_environments()
    # readlink; the host's NIX_STORE_DIR and NIX_STORE (unset); path-info.
    answers = iter([f"{APP}\n", "", "", json.dumps({APP: {"narSize": 8, "references": []}})])
    monkeypatch.setattr(
        process,
        "run",
        lambda argv, **kw: (
            fake.calls.append((list(argv), kw))
            or subprocess.CompletedProcess(argv, 0, next(answers), "")
        ),
    )
    closure = nix.host_closure(host, "/run/current-system")
    assert list(closure.roots) == [APP]
    printenv = 'sh -c \'printf "%s" "$(printenv -- "$1")"\' sh '
    assert [argv for argv, _ in fake.calls] == [
        [*ssh_prefix(host), "readlink -f -- /run/current-system"],
        [*ssh_prefix(host), printenv + "NIX_STORE_DIR"],
        [*ssh_prefix(host), printenv + "NIX_STORE"],
        [*ssh_prefix(host), shlex.join([*NIX, "path-info", "--json", "--recursive", APP])],
    ]
    ssh.forget_environments()
