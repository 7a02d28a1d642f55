"""`fleet --apply`: each host's outcome comes from the document its `apply --json`
prints, never from what it said on stderr."""

import json
import subprocess

import pytest

from adapters.nixstore import process
from adapters.studies import rollout
from adapters.studies.fleet import Apply, Fleet, Host
from adapters.studies.rollout import HostResult, HostStatus, roll_out

TARGET = "/nix/store/" + "a" * 32 + "-env"
# What stderr holds besides: a progress line and an error that would mislead if read.
NOISE = "budget-solve: planning (1.0s)\nerror: step 9 of 9 failed: not this one\n"


def _fleet(*names: str) -> Fleet:
    hosts = [Host(name, 10 << 30, "k", ssh=f"root@{name}") for name in names]
    return Fleet("f", hosts, {}, {}, [], apply=Apply("/nix/var/nix/profiles/p", TARGET))


def _rolled(monkeypatch, code: int, doc: object, *, max_failures: int = 1) -> list[HostResult]:
    seen = []

    def fake_run(argv, *, check, **_):
        seen.append(argv)
        out = json.dumps(doc) if doc is not None else ""
        return subprocess.CompletedProcess(argv, code, out, NOISE)

    monkeypatch.setattr(process, "run", fake_run)
    result = roll_out(_fleet("a"), parallel=1, max_failures=max_failures, time_limit=5)
    assert seen and "--json" in seen[0] and "--target-host=root@a" in seen[0]
    return result.hosts


def test_done_from_the_document(monkeypatch):
    doc = {
        "status": "done",
        "exit_code": 0,
        "steps": [{"measured_peak_bytes": 5}, {"measured_peak_bytes": 7}],
    }
    (host,) = _rolled(monkeypatch, 0, doc)
    assert host == HostResult("a", "root@a", HostStatus.DONE, 2, 7)


def test_a_failed_step_from_the_document(monkeypatch):
    doc = {
        "status": "failed",
        "error": "step 2 of 3 failed: No space left\non device",
        "exit_code": 1,
        "failed_step": 2,
    }
    (host,) = _rolled(monkeypatch, 1, doc)
    assert host.status is HostStatus.FAILED and host.failed_step == 2
    # One line, whatever the host printed.
    assert host.reason == "step 2 of 3 failed: No space left\\non device"


def test_no_plan_is_skipped_with_the_disk_it_needs(monkeypatch):
    doc = {
        "status": "infeasible",
        "error": "no plan fits 1.0 GiB; a budget of 2.0 GiB would",
        "exit_code": 3,
        "failed_step": None,
        "min_feasible_budget_bytes": 2 << 30,
        "steps": [],
    }
    (host,) = _rolled(monkeypatch, 3, doc)
    assert host.status is HostStatus.SKIPPED and host.needed_bytes == 2 << 30
    assert host.reason == "disk too small: no plan fits 1.0 GiB; a budget of 2.0 GiB would"


def test_bad_input_is_a_failure(monkeypatch):
    doc = {
        "status": "failed",
        "error": "another budget-solve apply is running on root@a:/p (pid 7)",
        "exit_code": 2,
        "failed_step": None,
    }
    (host,) = _rolled(monkeypatch, 2, doc)
    assert host.status is HostStatus.FAILED and host.failed_step is None
    assert host.reason == doc["error"]


@pytest.mark.parametrize(
    ("code", "doc"),
    [
        (1, None),
        (-9, None),
        (1, ["not", "a", "document"]),
        # A document that does not match the exit status is not believed.
        (1, {"status": "done", "exit_code": 0, "steps": []}),
    ],
    ids=["nothing", "killed", "not-an-object", "mismatch"],
)
def test_without_a_document_only_the_exit_status_is_said(monkeypatch, code, doc):
    (host,) = _rolled(monkeypatch, code, doc)
    assert host == HostResult(
        "a",
        "root@a",
        HostStatus.FAILED,
        reason=f"apply exited with {code} without a report",
    )


def test_the_report_names_statuses_by_value(monkeypatch):
    monkeypatch.setattr(
        rollout,
        "_apply",
        lambda fleet, host, time_limit: HostResult(host.name, host.ssh, HostStatus.FAILED),
    )
    report = roll_out(_fleet("a", "b"), parallel=1, max_failures=1, time_limit=5).to_json()
    assert [h["status"] for h in report["hosts"]] == ["failed", "not started"]
    assert report["totals"] == {"done": 0, "failed": 1, "skipped": 0, "not started": 1}
