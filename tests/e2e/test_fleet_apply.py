"""`budget-solve fleet --apply`: the update rolled out over SSH to the hosts of a fleet
file, each through its own plan, with a per-host report."""

import json

import pytest

from adapters.cli import main
from tests.e2e.test_remote import _host_used, _host_with_old_system

pytestmark = pytest.mark.nix

MiB = 1 << 20


def test_fleet_apply_upgrades_skips_and_stops_at_the_failure_limit(
    two_remote_hosts, nix_store, capsys, tmp_path
):
    roomy, small = two_remote_hosts
    profile, _old, new = _host_with_old_system(roomy, nix_store)
    assert _host_with_old_system(small, nix_store)[2] == new
    roomy.remount(_host_used(roomy) + 14 * MiB)
    # Less room than any one package's change needs: no plan fits there.
    small.remount(_host_used(small) + 1 * MiB)
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        f"""
name: two boxes
profiles:
  box: {{generate: {{paths: 60, components: 8, seed: 1}}}}
apply: {{profile: {profile}, target: {new}}}
hosts:
  - {{name: roomy, disk: 1G, profile: box, ssh: "{roomy.address}"}}
  - {{name: small, disk: 1G, profile: box, ssh: "{small.address}"}}
  - {{name: offline, disk: 1G, profile: box}}
  - {{name: refused, disk: 1G, profile: box, ssh: "root@127.0.0.3"}}
  - {{name: later, disk: 1G, profile: box, ssh: "root@127.0.0.4"}}
"""
    )
    with pytest.raises(SystemExit) as e:
        main(
            [
                "fleet",
                str(fleet),
                "--apply",
                "--yes",
                "--json",
                "--quiet",
                "--parallel",
                "2",
                "--time-limit",
                "10",
            ]
        )
    out, err = capsys.readouterr()
    assert e.value.code == 1, err  # a host failed
    doc = json.loads(out)
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["roomy"]["status"] == "done"
    assert hosts["roomy"]["steps"] >= 2
    assert roomy.run("readlink", "-f", str(profile)).strip() == new
    assert hosts["small"]["status"] == "skipped"
    assert hosts["small"]["needed_bytes"] > 0 and "no plan fits" in hosts["small"]["reason"]
    assert small.run("readlink", "-f", str(profile)).strip() == _old_of(small, profile)
    assert hosts["offline"] == {
        **hosts["offline"],
        "status": "skipped",
        "reason": "no ssh: address",
    }
    assert hosts["refused"]["status"] == "failed"
    assert "Connection refused" in hosts["refused"]["reason"]
    # One failure is the default limit: the host after it was not started.
    assert hosts["later"]["status"] == "not started"
    assert doc["totals"] == {"done": 1, "failed": 1, "skipped": 2, "not started": 1}

    # The text report: one line per host.
    with pytest.raises(SystemExit):
        main(
            [
                "fleet",
                str(fleet),
                "--apply",
                "--yes",
                "--quiet",
                "--time-limit",
                "10",
                "--max-failures",
                "2",
            ]
        )
    out, _ = capsys.readouterr()
    roomy_line = next(line for line in out.splitlines() if line.startswith("roomy"))
    assert "done" in roomy_line and "0 steps" in roomy_line  # already at the target


def _old_of(host, profile) -> str:
    return host.run("sh", "-c", f"readlink -f {profile}-1-link").strip()
