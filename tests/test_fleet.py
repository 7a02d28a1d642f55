"""Fleets: per-host verdicts, the disk-size table, distinct closures solved once, and the
same answers on local processes and on a real Dask cluster."""

import json
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.studies import fleet as fl
from solver.errors import InputError
from tests.test_scenario import assert_matplotlib_png

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "scenarios" / "fleets" / "vps-fleet.yaml"


@pytest.fixture(scope="module")
def local_report():
    spec = fl.load(FLEET)
    return spec, fl.run(spec, workers=2)


def test_hosts_with_identical_closures_are_solved_once(local_report):
    spec, _ = local_report
    assert len(spec.hosts) == 12
    assert len(fl.tasks(spec)) == len(spec.closures) == 3
    # Two hosts listing the same file by path share its key too.
    assert len({h.closure for h in spec.hosts if h.name.startswith("web")}) == 1


def test_verdicts_agree_with_the_curves(local_report):
    spec, report = local_report
    doc = report.to_json()
    t = doc["totals"]
    assert t["one_step"] + t["multi_step"] + t["cannot"] == t["hosts"] == 12
    for row, host in zip(doc["hosts"], spec.hosts, strict=True):
        c = report.answers[host.closure].curve
        budget = row["budget_bytes"]
        assert budget == host.disk - spec.overhead
        if row["verdict"] == "one-step":
            assert c.one_step_bytes <= budget
        elif row["verdict"] == "cannot":
            assert budget < c.min_bytes
            assert row["needed_disk_bytes"] == c.min_bytes + spec.overhead
        else:
            k = row["steps"]
            assert c.one_step_bytes > budget and k >= 2
            if k <= spec.max_steps:
                assert c.need[k] <= budget and c.need[k - 1] > budget
    # The disk-size table: every host fits in at most k steps with that disk.
    for k, disk in doc["disk_for_steps_bytes"].items():
        for a in report.answers.values():
            assert a.curve.need[int(k)] + spec.overhead <= disk
    needs = [doc["disk_for_steps_bytes"][k] for k in ("1", "2", "3")]
    assert needs == sorted(needs, reverse=True)
    assert doc["min_disk_bytes"] <= needs[-1]


def test_same_answers_on_a_dask_cluster(local_report):
    distributed = pytest.importorskip("dask.distributed")
    spec, report = local_report
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        on_dask = fl.run(spec, scheduler=cluster.scheduler_address)
    assert on_dask.to_json() == report.to_json()


def test_fleet_command_json_and_plot(tmp_path, capsys):
    out = tmp_path / "fleet.png"
    with pytest.raises(SystemExit) as e:
        main(["fleet", "-q", str(FLEET), "--json", "--plot", str(out), "--workers", "1"])
    assert e.value.code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["totals"]["hosts"] == 12
    assert_matplotlib_png(out)

    from adapters.cli.plots import fleet_figure

    fig = fleet_figure(fl.run(fl.load(FLEET), workers=1))
    disks = fig.axes[1]
    lines = {round(line.get_ydata()[0] * (1 << 30)) for line in disks.lines}
    for size in {h["disk_bytes"] for h in doc["hosts"]}:
        assert any(abs(size - y) <= 1 for y in lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("update: [{bump: openssl}]\nhosts: []\n", r"f.yaml:2: hosts: expected a non-empty list"),
        (
            "update: [{bump: openssl}]\nhosts:\n  - {name: a, disk: 10G, profile: nope}\n",
            r"f.yaml:3: hosts\[0\].profile: no profile 'nope'",
        ),
        (
            "update: [{bump: openssl}]\nhosts:\n  - {name: a, disk: ten, current: C}\n",
            r"f.yaml:3: hosts\[0\].disk: invalid size 'ten'",
        ),
        (
            "update: [{bump: opensl}]\nhosts:\n  - {name: a, disk: 9G, current: C}\n",
            r"f.yaml:1: update\[0\]: .*no package 'opensl'",
        ),
        (
            "update: [{bump: openssl}]\nhosts:\n  - {name: a, disk: 9G, current: C}\n"
            "  - {name: a, disk: 9G, current: C}\n",
            r"f.yaml:4: hosts\[1\].name: host 'a' is listed twice",
        ),
        (
            "update: [{bump: openssl}]\nhosts:\n  - {name: a, disk: 0, current: C}\n",
            r"f.yaml:3: hosts\[0\].disk: 0: a budget of 0 bytes holds no system",
        ),
        (
            "update: [{bump: openssl}]\noverhead: 2G\nhosts:\n  - {name: a, disk: 9G, current: C}\n"
            "  - {name: b, disk: 2G, current: C}\n",
            r"f.yaml:5: hosts\[1\].disk: host 'b': a disk of 2.0 GiB leaves nothing for the "
            r"store after the overhead of 2.0 GiB",
        ),
        (
            "update: [{bump: openssl}]\noverhead: 1G\nreserve: 1G\n"
            "hosts:\n  - {name: a, disk: 2G, current: C}\n",
            r"f.yaml:3: reserve: 1.0 GiB leaves nothing of the store budget of host 'a'",
        ),
        (
            "update: [{bump: openssl}]\nreserve: lots\n"
            "hosts:\n  - {name: a, disk: 2G, current: C}\n",
            r"f.yaml:2: reserve: invalid size 'lots'",
        ),
        (
            'update: [{bump: openssl}]\nprofiles:\n  "p\\x1b[2J": {generate: {paths: 200}}\n'
            'hosts:\n  - {name: a, disk: 9G, profile: "p\\x1b[2J"}\n',
            r"f.yaml:3: profiles.p\x1b\[2J: .*no control characters",
        ),
        (
            "update: [{bump: []}]\nhosts:\n  - {name: a, disk: 9G, current: C}\n",
            r"f.yaml:1: update\[0\].bump: expected at least 1 name\(s\), got 0",
        ),
        (
            # Applied one after another, as the solver applies them: the third takes a path
            # past 1 TiB, though each alone would not.
            "update: [{grow_all: 60%}, {grow_all: +600G}, {grow_all: +600G}]\n"
            "hosts:\n  - {name: a, disk: 9G, current: C}\n",
            r"f.yaml:1: update\[2\]: .*nixos-current.json: grows /nix/store/\S+ to [\d,]+ bytes",
        ),
    ],
)
def test_fleet_schema_errors(tmp_path, text, message):
    example = ROOT / "scenarios" / "examples" / "nixos-current.json"
    (tmp_path / "f.yaml").write_text(text.replace("current: C", f"current: {example}"))
    with pytest.raises(InputError) as e:
        fl.load(tmp_path / "f.yaml")
    assert e.match(message.replace("f.yaml", str(tmp_path / "f.yaml")))


ROLL_OUT = "apply: {profile: /nix/var/nix/profiles/system}\nhosts:\n"


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (
            ['{name: a, ssh: "-oProxyCommand=x"}'],
            "f.yaml:3: hosts[0].ssh: '-oProxyCommand=x': a host address may not start with '-'",
        ),
        (
            ['{name: a, ssh: "ssh-ng://-oProxyCommand=x"}'],
            "f.yaml:3: hosts[0].ssh: 'ssh-ng://-oProxyCommand=x': a host address may not start",
        ),
        (
            ['{name: a, ssh: "a\\nb"}'],
            "f.yaml:3: hosts[0].ssh: 'a\\nb': a host address may not contain whitespace",
        ),
        (
            ['{name: a, ssh: "ftp://a"}'],
            "f.yaml:3: hosts[0].ssh: 'ftp://a': expected [USER@]HOST",
        ),
        (
            ['{name: "a\\e[31m"}'],
            "f.yaml:3: hosts[0].name: 'a\\x1b[31m': no control characters",
        ),
        (['{name: "a\\0"}'], "f.yaml:3: hosts[0].name: 'a\\x00': no control characters"),
        (
            ['{name: a, ssh: b, target: "/nix/store/x\\ny"}'],
            "f.yaml:3: hosts[0].target: '/nix/store/x\\ny': no control characters",
        ),
        (
            ["{name: a, ssh: root@vps1}", "{name: b, ssh: root@VPS1}"],
            "f.yaml:4: hosts[1].ssh: host 'b': 'root@VPS1' is the address of host 'a' too "
            "(hosts[0].ssh, line 3)",
        ),
        (
            ["{name: a, ssh: vps1}", "{name: b, ssh: x}", "{name: c, ssh: ssh-ng://vps1}"],
            "f.yaml:5: hosts[2].ssh: host 'c': 'vps1' is the address of host 'a' too "
            "(hosts[0].ssh, line 3)",
        ),
        (
            ["{name: a, ssh: ssh://vps1}", "{name: b, ssh: vps1}"],
            "f.yaml:4: hosts[1].ssh: host 'b': 'vps1' is the address of host 'a' too",
        ),
    ],
)
def test_fleet_hosts_are_one_safe_line_each(tmp_path, hosts, message):
    """What reaches ssh or a terminal from a fleet file: refused at load, in one line with
    its control characters escaped; one machine is not listed twice under two names."""
    example = ROOT / "scenarios" / "examples" / "nixos-current.json"
    listed = "".join(f"  - {h[:-1]}, disk: 9G, current: {example}}}\n" for h in hosts)
    (tmp_path / "f.yaml").write_text(ROLL_OUT + listed)
    with pytest.raises(InputError) as e:
        fl.load(tmp_path / "f.yaml")
    assert str(e.value).startswith(message.replace("f.yaml", str(tmp_path / "f.yaml")))
    assert str(e.value).isprintable()


def test_hosts_with_other_users_are_other_hosts(tmp_path):
    example = ROOT / "scenarios" / "examples" / "nixos-current.json"
    hosts = "".join(
        f"  - {{name: {n}, disk: 9G, current: {example}, ssh: {a}}}\n"
        for n, a in (("a", "root@vps1"), ("b", "deploy@vps1"), ("c", "ssh-ng://vps2"))
    )
    (tmp_path / "f.yaml").write_text(ROLL_OUT + hosts)
    assert [h.ssh for h in fl.load(tmp_path / "f.yaml").hosts] == [
        "root@vps1",
        "deploy@vps1",
        "ssh-ng://vps2",
    ]


def test_a_fleet_to_roll_out_needs_no_update(tmp_path, capsys):
    example = ROOT / "scenarios" / "examples" / "nixos-current.json"
    hosts = f"hosts:\n  - {{name: a, disk: 9G, current: {example}, ssh: root@a}}\n"
    path = tmp_path / "f.yaml"
    path.write_text(f"apply: {{profile: /nix/var/nix/profiles/system}}\n{hosts}")
    fleet = fl.load(path)
    assert fleet.changes == [] and fleet.apply is not None
    # Planning capacity needs one: one line, exit 2.
    with pytest.raises(SystemExit) as e:
        main(["fleet", str(path)])
    assert e.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {path}: no update: to plan")
    # Without apply: either, the update is missing.
    path.write_text(hosts)
    with pytest.raises(InputError, match="missing key 'update'"):
        fl.load(path)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--workers", "0"], "'0' is not in the range 1 to 1024"),
        (["--workers", "-1"], "'-1' is not a whole number"),
        (["--workers", "99999999999"], "not in the range 1 to 1024"),
        (["--workers", "1_0"], "not a whole number"),
        (["--apply", "--yes", "--parallel", "1.5"], "--parallel"),
        (["--apply", "--yes", "--parallel", "-2"], "--parallel"),
        (["--apply", "--yes", "--max-failures", "0.5"], "--max-failures"),
        (["--apply", "--yes", "--max-failures", "99999999999999999999"], "1 to 100000"),
        (["--scheduler", "foo"], "not a Dask scheduler address"),
        (["--scheduler", ""], "not a Dask scheduler address"),
        (["--scheduler", "inproc://x"], "not a Dask scheduler address"),
        (["--scheduler", "tcp://h:99999"], "not a Dask scheduler address"),
        (["--parallel", "3"], "--parallel: only with --apply"),
        (["--yes"], "--yes: only with --apply"),
        (["--apply", "--yes", "--workers", "2"], "--apply takes no"),
    ],
)
def test_fleet_options_are_checked_before_any_work(tmp_path, capsys, options, said):
    """Each bad option value: one `error:` line and exit 2, before the file is read (it
    does not exist)."""
    with pytest.raises(SystemExit) as e:
        main(["fleet", str(tmp_path / "missing.yaml"), *options])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert said in err


def test_local_solving_starts_no_more_processes_than_closures(monkeypatch):
    """--workers 1024 on a fleet of one distinct closure solves in this process."""
    spec = fl.load(FLEET)
    spec.closures = dict(list(spec.closures.items())[:1])
    spec.hosts = [h for h in spec.hosts if h.closure in spec.closures]

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool for one closure")

    monkeypatch.setattr("adapters.studies.fleet.running.ProcessPoolExecutor", no_pool)
    assert len(fl.run(spec, workers=1024).answers) == 1
