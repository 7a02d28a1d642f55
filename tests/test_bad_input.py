"""Bad input, as a hostile user or a broken tool would give it: every case ends with exit
status 2 and one `error: ...` line naming what is wrong, never a traceback, within a
memory cap (1 GiB of address space over the interpreter's own) and a time cap."""

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CURRENT = str(ROOT / "scenarios" / "examples" / "nixos-current.json")
TARGET = str(ROOT / "scenarios" / "examples" / "nixos-target.json")
STORE = "/nix/store/"
OLD_NIXPKGS = str(ROOT / "tests" / "data" / "standin" / "old")
H = "a" * 32


def _cap() -> None:
    soft = 3 << 30  # address space: the interpreter, numpy and OR-tools take ~1.5 GiB
    resource.setrlimit(resource.RLIMIT_AS, (soft, soft))


PROGRESS = re.compile(r"budget-solve: [^\n]* \(\d+\.\ds\)")


def run(
    args: list[str | bytes],
    tmp: Path,
    *,
    env: dict[str, str] | None = None,
    stdout: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """budget-solve with `args`, its stdout captured or written to the file `stdout`."""
    env = {
        **os.environ,
        "BUDGET_SOLVE_STATE_DIR": str(tmp / "state"),
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    with open(stdout, "wb") if stdout is not None else open(os.devnull, "rb") as out:
        return subprocess.run(
            [sys.executable, "-m", "adapters.cli", *args],
            stdout=out if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="backslashreplace",
            timeout=120,
            env=env,
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            preexec_fn=_cap,
            check=False,
        )


def write(tmp: Path, name: str, content: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


def path_info(size: str) -> str:
    return json.dumps({f"{STORE}{H}-x-1.0": {"narSize": 0, "references": []}}).replace(
        '"narSize": 0', f'"narSize": {size}'
    )


SCENARIO = "current: {generate: {paths: 200}}\nlimit: 2G\nchanges:\n  - %s\n"
FLEET = (
    "update: [{grow_all: 1%%}]\nhosts:\n  - {name: %s, disk: 10G, profile: p}\n"
    "profiles:\n  p: {generate: {paths: 200}}\n%s"
)
BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
)
PROFILE = "profiles:\n  p: {generate: {paths: 200}}\n"

# (id, files to write {name: content}, argv (with {name} for a file's path), in the message)
A = f"{STORE}{'a' * 32}-a-1.0"
B = f"{STORE}{'b' * 32}-b-1.0"
CYCLE = json.dumps({A: {"narSize": 100, "references": [B]}, B: {"narSize": 100, "references": [A]}})
ELSEWHERE = json.dumps({f"/gnu/store/{'c' * 32}-c-1.0": {"narSize": 100, "references": []}})
TWO_STORES = json.dumps(
    {
        A: {"narSize": 100, "references": []},
        f"/gnu/store/{'c' * 32}-c-1.0": {"narSize": 100, "references": []},
    }
)
CASES = [
    (
        "reference-cycle",
        {"c.json": CYCLE},
        ["--limit", "3G", "--current", "{c.json}", "--target", TARGET],
        "cycle",
    ),
    (
        "two-store-dirs",
        {"c.json": TWO_STORES},
        ["--limit", "3G", "--current", "{c.json}", "--target", TARGET],
        "two store directories",
    ),
    (
        "other-store",
        {"c.json": ELSEWHERE},
        ["--limit", "3G", "--current", "{c.json}", "--target", TARGET],
        "one store",
    ),
    (
        "empty-current",
        {"c.json": "{}"},
        ["--limit", "3G", "--current", "{c.json}", "--target", TARGET],
        "empty",
    ),
    (
        "empty-target",
        {"t.json": "{}"},
        ["--limit", "3G", "--current", CURRENT, "--target", "{t.json}"],
        "empty",
    ),
    ("limit-word", {}, ["--limit", "nine", "--target", TARGET, "--current", CURRENT], "nine"),
    ("limit-negative", {}, ["--limit", "-1G", "--target", TARGET, "--current", CURRENT], "-1G"),
    ("limit-zero-unit", {}, ["--limit", "9Q", "--target", TARGET, "--current", CURRENT], "9Q"),
    ("time-nan", {}, ["--limit", "3G", "--target", TARGET, "--time-limit", "nan"], "finite"),
    ("time-inf", {}, ["--limit", "3G", "--target", TARGET, "--time-limit", "inf"], "time-limit"),
    ("gap-nan", {}, ["--limit", "3G", "--target", TARGET, "--peak-gap", "nan"], "finite"),
    ("workers-zero", {}, ["--limit", "3G", "--target", TARGET, "--workers", "0"], "workers"),
    # int(), float() and str.isdigit() take other scripts' digits: "٣" is 3 to them.
    ("workers-arabic", {}, ["--limit", "3G", "--target", TARGET, "--workers", "\u0663"], "workers"),
    ("workers-huge", {}, ["--limit", "3G", "--target", TARGET, "--workers", "9" * 20], "workers"),
    ("time-arabic", {}, ["--limit", "3G", "--target", TARGET, "--time-limit", "\u0663"], "time"),
    ("gap-arabic", {}, ["--limit", "3G", "--target", TARGET, "--peak-gap", "\u0663"], "gap"),
    ("limit-zero", {}, ["--limit", "0", "--target", TARGET, "--current", CURRENT], "0 bytes"),
    ("limit-zero-g", {}, ["--limit", "0G", "--target", TARGET, "--current", CURRENT], "0 bytes"),
    (
        "reserve-is-limit",
        {},
        ["--limit", "3G", "--target", TARGET, "--current", CURRENT, "--reserve", "3G"],
        "--reserve",
    ),
    (
        "target-host-option",
        {},
        ["--limit", "3G", "--target", TARGET, "--target-host", "-oProxyCommand=x"],
        "--target-host",
    ),
    ("no-target", {}, ["--limit", "3G", "--current", CURRENT], "--target"),
    ("no-limit", {}, ["--target", TARGET, "--current", CURRENT], "--limit"),
    (
        "missing-file",
        {},
        ["--limit", "3G", "--target", "/no/such.json", "--current", CURRENT],
        "/no/such.json",
    ),
    (
        "dev-null",
        {},
        ["--limit", "3G", "--target", TARGET, "--current", "/dev/null"],
        "not a regular file",
    ),
    (
        "empty",
        {"e.json": ""},
        ["--limit", "3G", "--target", "{e.json}", "--current", CURRENT],
        "empty",
    ),
    (
        "binary",
        {"b.json": os.urandom(64) + b"\xff"},
        ["--limit", "3G", "--target", "{b.json}", "--current", CURRENT],
        "b.json",
    ),
    (
        "huge-narsize",
        {"h.json": path_info("9" * 5000)},
        ["--limit", "3G", "--target", "{h.json}", "--current", CURRENT],
        "h.json",
    ),
    (
        "negative-narsize",
        {"n.json": path_info("-5")},
        ["--limit", "3G", "--target", "{n.json}", "--current", CURRENT],
        "negative",
    ),
    (
        "float-narsize",
        {"f.json": path_info("1.5")},
        ["--limit", "3G", "--target", "{f.json}", "--current", CURRENT],
        "non-integer",
    ),
    (
        "deep-json",
        {"d.json": "[" * 200_000 + "]" * 200_000},
        ["--limit", "3G", "--target", "{d.json}", "--current", CURRENT],
        "d.json",
    ),
    (
        "truncated-json",
        {"t.json": '{"/nix/store/x": {"narSize": 1'},
        ["--limit", "3G", "--target", "{t.json}", "--current", CURRENT],
        "malformed JSON",
    ),
    (
        "registration-huge",
        {"r.reg": f"{STORE}{H}-x\n\n{'9' * 5000}\n0\n"},
        ["--limit", "3G", "--target", "{r.reg}", "--current", CURRENT],
        "r.reg",
    ),
    (
        "couple-one",
        {},
        ["--limit", "3G", "--target", TARGET, "--current", CURRENT, "--couple", "openssl"],
        "--couple",
    ),
    (
        "non-vital-unknown",
        {},
        ["--limit", "3G", "--target", TARGET, "--current", CURRENT, "--non-vital", "nosuchpkg"],
        "nosuchpkg",
    ),
    ("reserve-word", {}, ["--limit", "3G", "--target", TARGET, "--reserve", "lots"], "lots"),
    # scenario
    ("yaml-not-utf8", {"s.yaml": b"limit: 2G\n\xff\xfe\n"}, ["scenario", "{s.yaml}"], "UTF-8"),
    (
        "yaml-huge-int",
        {"s.yaml": "current: {generate: {paths: 200}}\nlimit: " + "9" * 5000 + "\n"},
        ["scenario", "{s.yaml}"],
        "4300 digits",
    ),
    (
        "yaml-surrogate",
        {"s.yaml": 'name: "\\ud800"\n' + SCENARIO % "{grow_all: 1%}"},
        ["scenario", "{s.yaml}"],
        "surrogate",
    ),
    (
        "diff-binary",
        {"s.yaml": SCENARIO % "{diff: d.bin}", "d.bin": b"\x82\xff" * 99},
        ["scenario", "{s.yaml}"],
        "not UTF-8",
    ),
    (
        "diff-dev-zero",
        {"s.yaml": SCENARIO % "{diff: /dev/zero}"},
        ["scenario", "{s.yaml}"],
        "not a regular file",
    ),
    (
        "diff-missing",
        {"s.yaml": SCENARIO % "{diff: /no/such.diff}"},
        ["scenario", "{s.yaml}"],
        "such.diff",
    ),
    ("yaml-dev-zero", {}, ["scenario", "/dev/zero"], "not a regular file"),
    ("yaml-nul", {"s.yaml": "limit: 2\x00G\n"}, ["scenario", "{s.yaml}"], "#x0000"),
    ("yaml-bomb", {"s.yaml": BOMB}, ["scenario", "{s.yaml}"], "aliases"),
    (
        "yaml-duplicate",
        {"s.yaml": "limit: 2G\nlimit: 3G\ncurrent: x\nchanges: []\n"},
        ["scenario", "{s.yaml}"],
        "twice",
    ),
    ("yaml-deep", {"s.yaml": "[" * 100_000 + "]" * 100_000}, ["scenario", "{s.yaml}"], "s.yaml"),
    ("yaml-huge", {"s.yaml": "# " + "x" * (2 << 20)}, ["scenario", "{s.yaml}"], "too large"),
    ("yaml-list", {"s.yaml": "- 1\n- 2\n"}, ["scenario", "{s.yaml}"], "mapping"),
    (
        "grow-overflow",
        {"s.yaml": SCENARIO % "{grow_all: 1e308%}"},
        ["scenario", "{s.yaml}"],
        "growth",
    ),
    ("grow-below", {"s.yaml": SCENARIO % "{grow_all: -200%}"}, ["scenario", "{s.yaml}"], "-100%"),
    ("grow-word", {"s.yaml": SCENARIO % "{grow_all: lots}"}, ["scenario", "{s.yaml}"], "lots"),
    (
        "generate-huge",
        {"s.yaml": "current: {generate: {paths: 50000000}}\nlimit: 2G\nchanges: []\n"},
        ["scenario", "{s.yaml}"],
        "at most",
    ),
    (
        "unknown-key",
        {"s.yaml": SCENARIO % "{bump: x}" + "colour: red\n"},
        ["scenario", "{s.yaml}"],
        "colour",
    ),
    ("unknown-change", {"s.yaml": SCENARIO % "{paint: x}"}, ["scenario", "{s.yaml}"], "'paint'"),
    ("scenario-missing", {}, ["scenario", "/no/such.yaml"], "such.yaml"),
    (
        "scenario-time-nan",
        {"s.yaml": SCENARIO % "{bump: x}"},
        ["scenario", "{s.yaml}", "--time-limit", "nan"],
        "finite",
    ),
    # fleet
    (
        "profiles-int",
        {"f.yaml": "update: []\nhosts: []\nprofiles: 5\n"},
        ["fleet", "{f.yaml}"],
        "profiles",
    ),
    (
        "profiles-bool",
        {"f.yaml": "update: []\nhosts: []\nprofiles: true\n"},
        ["fleet", "{f.yaml}"],
        "profiles",
    ),
    (
        "max-steps-huge",
        {"f.yaml": FLEET % ("h1", "max_steps: 1000000000\n")},
        ["fleet", "{f.yaml}"],
        "at most",
    ),
    ("host-null", {"f.yaml": FLEET % ("null", "")}, ["fleet", "{f.yaml}"], "name"),
    (
        "host-bomb",
        {"f.yaml": "update: []\n" + BOMB + "hosts:\n  - {name: *c, disk: 1G}\n"},
        ["fleet", "{f.yaml}"],
        "aliases",
    ),
    ("hosts-int", {"f.yaml": "update: []\nhosts: 5\n"}, ["fleet", "{f.yaml}"], "hosts"),
    (
        "disk-word",
        {"f.yaml": "update: []\nhosts:\n  - {name: h, disk: big, profile: p}\n" + PROFILE},
        ["fleet", "{f.yaml}"],
        "big",
    ),
    (
        "fleet-dup-host",
        {"f.yaml": "update: []\nhosts:\n" + "  - {name: h, disk: 9G, profile: p}\n" * 2 + PROFILE},
        ["fleet", "{f.yaml}"],
        "twice",
    ),
    (
        "fleet-workers-0",
        {"f.yaml": FLEET % ("h1", "")},
        ["fleet", "{f.yaml}", "--workers", "0"],
        "1 to",
    ),
    (
        "fleet-workers-huge",
        {"f.yaml": FLEET % ("h1", "")},
        ["fleet", "{f.yaml}", "--workers", "9" * 30],
        "--workers",
    ),
    (
        "fleet-parallel-fraction",
        {"f.yaml": FLEET % ("h1", "")},
        ["fleet", "{f.yaml}", "--apply", "--yes", "--parallel", "2.5"],
        "whole number",
    ),
    (
        "fleet-max-failures-negative",
        {"f.yaml": FLEET % ("h1", "")},
        ["fleet", "{f.yaml}", "--apply", "--yes", "--max-failures", "-3"],
        "--max-failures",
    ),
    (
        "fleet-scheduler-word",
        {"f.yaml": FLEET % ("h1", "")},
        ["fleet", "{f.yaml}", "--scheduler", "nowhere"],
        "Dask scheduler address",
    ),
    (
        "fleet-disk-zero",
        {"f.yaml": FLEET.replace("10G", "0") % ("h1", "")},
        ["fleet", "{f.yaml}"],
        "0 bytes",
    ),
    (
        "fleet-reserve-fills",
        {"f.yaml": FLEET % ("h1", "reserve: 10G\n")},
        ["fleet", "{f.yaml}"],
        "leaves nothing",
    ),
    (
        "fleet-bump-empty",
        {"f.yaml": FLEET.replace("grow_all: 1%%", "bump: []") % ("h1", "")},
        ["fleet", "{f.yaml}"],
        "bump",
    ),
    (
        "fleet-grow-out-of-range",
        {"f.yaml": FLEET.replace("grow_all: 1%%", "grow_all: +1T") % ("h1", "")},
        ["fleet", "{f.yaml}"],
        "larger than any store path",
    ),
    ("fleet-nul", {"f.yaml": FLEET % ("h\x00", "")}, ["fleet", "{f.yaml}"], "#x0000"),
    ("fleet-escape", {"f.yaml": FLEET % ('"h\\x1b[2J"', "")}, ["fleet", "{f.yaml}"], "control"),
    (
        "fleet-not-utf8",
        {"f.yaml": (FLEET % ("h1", "")).encode() + b"# \xff\n"},
        ["fleet", "{f.yaml}"],
        "UTF-8",
    ),
    (
        "scenario-limit-zero",
        {"s.yaml": SCENARIO.replace("2G", "0") % "{grow_all: 1%}"},
        ["scenario", "{s.yaml}"],
        "0 bytes",
    ),
    (
        "scenario-reserve-fills",
        {"s.yaml": SCENARIO % "{grow_all: 1%}" + "reserve: 2G\n"},
        ["scenario", "{s.yaml}"],
        "leaves nothing",
    ),
    ("scenario-bump-empty", {"s.yaml": SCENARIO % "{bump: []}"}, ["scenario", "{s.yaml}"], "bump"),
    (
        "scenario-add-huge",
        {"s.yaml": SCENARIO % "{add: x, size: 3T}"},
        ["scenario", "{s.yaml}"],
        "larger than any",
    ),
    # apply
    ("apply-no-target", {}, ["apply", "--yes", "--limit", "1G", "--profile", "p"], "--target"),
    (
        "apply-max-jobs",
        {},
        [
            "apply",
            "--yes",
            "--limit",
            "1G",
            "--profile",
            "p",
            "--target",
            f"{STORE}{H}-x",
            "--max-jobs",
            "many",
        ],
        "max-jobs",
    ),
    (
        "apply-flake-no-nixos",
        {},
        [
            "apply",
            "--yes",
            "--limit",
            "1G",
            "--profile",
            "p",
            "--target",
            f"{STORE}{H}-x",
            "--flake",
            "/c#h",
        ],
        "--nixos",
    ),
    (
        "apply-limit-word",
        {},
        ["apply", "--yes", "--limit", "lots", "--profile", "p", "--target", f"{STORE}{H}-x"],
        "lots",
    ),
    (
        "apply-bad-flake",
        {},
        [
            "apply",
            "--yes",
            "--nixos",
            "--limit",
            "1G",
            "--flake",
            "x#",
            "--old-nixpkgs",
            OLD_NIXPKGS,
        ],
        "FLAKE[#HOST]",
    ),
    (
        "apply-old-nixpkgs",
        {},
        [
            "apply",
            "--yes",
            "--nixos",
            "--limit",
            "1G",
            "--flake",
            "/c#h",
            "--old-nixpkgs",
            "/no/such",
        ],
        "/no/such",
    ),
    (
        "apply-time-nan",
        {},
        [
            "apply",
            "--yes",
            "--limit",
            "1G",
            "--profile",
            "p",
            "--target",
            f"{STORE}{H}-x",
            "--time-limit",
            "nan",
        ],
        "finite",
    ),
    ("unknown-command", {}, ["frobnicate"], "frobnicate"),
    (
        "keep-unknown",
        {},
        ["--limit", "3G", "--target", TARGET, "--current", CURRENT, "--keep", "/no/such"],
        "--keep",
    ),
    (
        "couple-unknown",
        {},
        ["--limit", "3G", "--target", TARGET, "--current", CURRENT, "--couple", "nosuch,other"],
        "nosuch",
    ),
    (
        "scenario-changes-int",
        {"s.yaml": "current: {generate: {paths: 200}}\nlimit: 2G\nchanges: 5\n"},
        ["scenario", "{s.yaml}"],
        "changes",
    ),
    (
        "scenario-limit-word",
        {"s.yaml": "current: {generate: {paths: 200}}\nlimit: lots\nchanges: [{grow_all: 1%}]\n"},
        ["scenario", "{s.yaml}"],
        "lots",
    ),
    (
        "fleet-overhead-word",
        {"f.yaml": FLEET % ("h1", "overhead: much\n")},
        ["fleet", "{f.yaml}"],
        "much",
    ),
    (
        "apply-cores-negative",
        {},
        [
            "apply",
            "--yes",
            "--limit",
            "1G",
            "--profile",
            "p",
            "--target",
            f"{STORE}{H}-x",
            "--cores",
            "-1",
        ],
        "cores",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "files", "argv", "said"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, name, files, argv, said):
    paths = {n: write(tmp_path, n, content) for n, content in files.items()}
    args = [paths.get(a[1:-1], a) if a.startswith("{") and a.endswith("}") else a for a in argv]
    result = run(args, tmp_path)
    where = f"{name}: {result.stderr[-2000:]!r}"
    assert result.returncode == 2, where
    assert "Traceback" not in result.stderr, where
    # A phase that takes over a second says so on stderr ("budget-solve: reading the
    # scenario (1.1s)"), as a slow machine may: those lines aside, one line, the error.
    lines = [ln for ln in result.stderr.strip().splitlines() if not PROGRESS.fullmatch(ln)]
    assert len(lines) == 1 and lines[0].startswith("error: "), where
    assert said in lines[0], where


@pytest.mark.slow
@pytest.mark.parametrize(
    "journal",
    [os.urandom(300), b"{}", b'{"version": 2, "specs": 5}', b"[" * 100_000],
    ids=["random", "empty-object", "bad-specs", "deep"],
)
def test_damaged_journal(tmp_path, journal, monkeypatch):
    """A journal an apply would read: refused with one line saying to remove it."""
    from adapters.apply.journal import state_dir_for
    from adapters.nixstore.host import LOCAL

    # A profile at a generation that exists, in a store directory of the test's own.
    store = tmp_path / "store"
    (store / f"{H}-x").mkdir(parents=True)
    monkeypatch.setenv("NIX_STORE_DIR", str(store))
    profile = tmp_path / "profile"
    profile.symlink_to(store / f"{H}-x")
    # Where the subprocess (run() sets the same variable) will look for it.
    monkeypatch.setenv("BUDGET_SOLVE_STATE_DIR", str(tmp_path / "state"))
    state = state_dir_for(LOCAL, profile)
    state.mkdir(parents=True, mode=0o700)
    (state / "journal.json").write_bytes(journal)
    result = run(
        [
            "apply",
            "--yes",
            "--limit",
            "1G",
            "--profile",
            str(profile),
            "--target",
            f"{store}/{H}-y",
        ],
        tmp_path,
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and "to plan afresh" in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: None, "no such profile"),
        (lambda p: p.mkdir(), "a directory, not a profile"),
        (lambda p: p.write_text("x"), "a file, not a profile"),
        (lambda p: p.symlink_to(p.parent / "elsewhere"), "which is not a store path"),
        (lambda p: p.symlink_to(f"{STORE}{H}-gone"), "is not in the store"),
    ],
    ids=["missing", "directory", "file", "outside-the-store", "dangling"],
)
def test_bad_profile(tmp_path, make, said):
    """Every problem with --profile is one line that says "profile", before anything is
    locked or written."""
    profile = tmp_path / "profile"
    make(profile)
    argv = [
        "apply",
        "--yes",
        "--limit",
        "1G",
        "--profile",
        str(profile),
        "--target",
        f"{STORE}{H}-y",
    ]
    result = run(argv, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"error: profile {profile}: ") and said in lines[0], lines[0]
    assert not (tmp_path / "state").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("store", "said"),
    [("/proc", "reports a size of 0"), ("/nonexistent-store", "cannot measure")],
    ids=["no-blocks", "no-store"],
)
def test_limit_auto_without_a_size(tmp_path, monkeypatch, store, said):
    """`--limit auto` on a filesystem statvfs gives no size for: one line, not "no plan fits
    0 B"."""
    monkeypatch.setenv("NIX_STORE_DIR", store)
    argv = ["apply", "--yes", "--limit", "auto", "--profile", "p", "--target", f"{store}/{H}-y"]
    result = run(argv, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith("error: ") and "--limit" in lines[0] and said in lines[0], lines[0]


PLAN = ["--limit", "3G", "--current", CURRENT, "--target", TARGET, "--time-limit", "5"]


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_output_in_an_encoding_without_the_bars(tmp_path, encoding):
    """A terminal or a locale that cannot show the budget bars (PYTHONIOENCODING, a
    non-UTF-8 locale): the bars in ASCII, "..." for a name cut short with "…", not a
    traceback."""
    result = run(PLAN, tmp_path, env={"PYTHONIOENCODING": encoding})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("plan: ")
    table = lines[1 : lines.index("")]
    assert len(table) == 3 and all(row.rstrip().endswith(("#", ".")) for row in table), lines
    assert "..." in lines[1] and "\\u" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_full_stdout_is_one_error(tmp_path, as_json):
    """`> /dev/full`: one line saying the output could not be written, exit 1 (the input
    was fine), not a traceback and exit 120 from the interpreter's last flush."""
    argv = [*PLAN, "--quiet", *(["--json"] if as_json else [])]
    result = run(argv, tmp_path, stdout=Path("/dev/full"))
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr == "error: cannot write the output: No space left on device\n"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("profile", "shown"),
    [
        (b"/tmp/not-utf-8-\xff", "/tmp/not-utf-8-\\udcff"),
        ("/tmp/two\nlines", "/tmp/two\\nlines"),
        ("/tmp/red\x1b[31m", "/tmp/red\\x1b[31m"),
    ],
    ids=["not-utf-8", "newline", "escape"],
)
def test_a_strange_profile_name_is_one_escaped_line(tmp_path, profile, shown):
    """A value the user gave is written escaped: it cannot start a line of its own or
    drive the terminal, and bytes that are not UTF-8 do not crash the journal's path."""
    argv = ["apply", "--yes", "--limit", "1G", "--profile", profile, "--target", f"{STORE}{H}-y"]
    result = run(argv, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == f"error: profile {shown}: no such profile\n"
