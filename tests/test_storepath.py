import pytest

from solver.errors import InputError
from solver.storepath import StorePath, parse_drv_name, split_output

H = "p7kmr6b04zdsxkbxkx758gcfkjbcxma9"


# Expected values are what `builtins.parseDrvName` returns in Nix 2.8.
@pytest.mark.parametrize(
    ("name", "pname", "version"),
    [
        ("hello-2.10", "hello", "2.10"),
        ("foo-_bar", "foo", "_bar"),
        ("perl-5.36.0-env", "perl", "5.36.0-env"),
        ("0-unstable", "0-unstable", ""),
        ("a-b-c", "a-b-c", ""),
        ("nix-index-unstable-2022-03-07", "nix-index-unstable", "2022-03-07"),
        ("foo-.1", "foo", ".1"),
        ("system-path", "system-path", ""),
        ("util-linux-2.38.1-bin", "util-linux", "2.38.1-bin"),
        (
            "nixos-system-micro-22.11.20221011.285e77e",
            "nixos-system-micro",
            "22.11.20221011.285e77e",
        ),
    ],
)
def test_parse_drv_name(name, pname, version):
    assert parse_drv_name(name) == (pname, version)


@pytest.mark.parametrize(
    ("version", "split"),
    [
        ("2.38.1-bin", ("2.38.1", "bin")),
        ("5.1-p16", ("5.1-p16", "")),
        ("9.18.7-host", ("9.18.7", "host")),
        ("3.8-info", ("3.8", "info")),
        ("2022-03-07", ("2022-03-07", "")),
        ("", ("", "")),
    ],
)
def test_split_output(version, split):
    assert split_output(version) == split


def test_store_path_fields():
    sp = StorePath.parse(f"/nix/store/{H}-openssl-3.0.7-bin")
    assert (sp.store_dir, sp.hash, sp.name) == ("/nix/store", H, "openssl-3.0.7-bin")
    assert (sp.pname, sp.version, sp.output, sp.key) == ("openssl", "3.0.7", "bin", "openssl-bin")
    assert sp.path == f"/nix/store/{H}-openssl-3.0.7-bin"
    assert StorePath.parse(f"/tmp/x/store/{H}-a.drv").is_derivation


@pytest.mark.parametrize(
    "path",
    [
        "openssl",
        f"nix/store/{H}-x",
        f"/nix/store/{H[:-1]}-x",
        f"/nix/store/{H}x",
        f"/nix/store/{H}-",
        f"/nix/store/{H}-.hidden",
        f"/nix/store/{H[:-1]}e-x",
        f"/nix/store/{H}-a b",
    ],
)
def test_store_path_rejects(path):
    with pytest.raises(InputError):
        StorePath.parse(path)
