"""`fleet --apply`: the update rolled out, each host through its own plan.

Every host with an `ssh:` address runs `budget-solve apply --target-host ADDRESS
--limit auto` in a process of its own (its own connection, lock and journal, which live
on the host), `parallel` at a time. Once `max_failures` hosts have failed, no host starts;
those running finish. A host whose disk is too small for any plan is skipped, with the
disk it would need; one without an address is skipped too. Rerunning the same command
resumes every interrupted host from its journal and finds the finished ones done.
"""

import json
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

from adapters.apply.results import ApplyStatus
from adapters.nixstore import process
from adapters.studies.fleet.model import Fleet, Host
from solver.errors import ExitCode, InputError


class HostStatus(StrEnum):
    """How one host's rollout ended."""

    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # a disk too small for any plan, or no address
    NOT_STARTED = "not started"  # the failure limit was reached first


@dataclass(frozen=True)
class HostResult:
    name: str
    address: str | None
    status: HostStatus
    steps: int | None = None
    measured_peak_bytes: int | None = None
    failed_step: int | None = None
    reason: str | None = None
    needed_bytes: int | None = None


class HostResultJson(TypedDict):
    name: str
    address: str | None
    status: str  # a HostStatus
    steps: int | None
    measured_peak_bytes: int | None
    failed_step: int | None
    reason: str | None
    needed_bytes: int | None


class RolloutDocument(TypedDict):
    """What `fleet --apply --json` prints."""

    fleet: str
    hosts: list[HostResultJson]
    totals: dict[str, int]  # hosts by HostStatus, every status present


@dataclass(frozen=True)
class Rollout:
    fleet: str
    hosts: list[HostResult]

    def counts(self) -> dict[HostStatus, int]:
        """Hosts by status, every status present."""
        out = dict.fromkeys(HostStatus, 0)
        for h in self.hosts:
            out[h.status] += 1
        return out

    def to_json(self) -> RolloutDocument:
        """The rollout as `fleet --apply --json` prints it."""
        return {
            "fleet": self.fleet,
            "hosts": [_host_json(h) for h in self.hosts],
            "totals": {status.value: n for status, n in self.counts().items()},
        }


def _host_json(h: HostResult) -> HostResultJson:
    return {
        "name": h.name,
        "address": h.address,
        "status": h.status.value,
        "steps": h.steps,
        "measured_peak_bytes": h.measured_peak_bytes,
        "failed_step": h.failed_step,
        "reason": h.reason,
        "needed_bytes": h.needed_bytes,
    }


def roll_out(
    fleet: Fleet,
    *,
    parallel: int,
    max_failures: int,
    time_limit: float,
    progress: Callable[[str], None] = lambda _: None,
) -> Rollout:
    if fleet.apply is None:
        raise InputError(f"fleet {fleet.name}: --apply needs an `apply:` section (profile, target)")
    results: dict[str, HostResult] = {}
    todo: list[Host] = []
    for host in fleet.hosts:
        if host.ssh is None:
            results[host.name] = HostResult(
                host.name, None, HostStatus.SKIPPED, reason="no ssh: address"
            )
        elif (host.target or fleet.apply.target) is None:
            raise InputError(f"host {host.name}: no target (apply: target, or its own target:)")
        else:
            todo.append(host)
    failures = 0
    running: dict[Future[HostResult], Host] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        while todo or running:
            while todo and len(running) < parallel and failures < max_failures:
                host = todo.pop(0)
                progress(f"upgrading {host.name} ({host.ssh})")
                running[pool.submit(_apply, fleet, host, time_limit)] = host
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                host = running.pop(future)
                result = future.result()
                results[host.name] = result
                failures += result.status is HostStatus.FAILED
                progress(f"{host.name}: {result.status.value}")
    for host in todo:
        results[host.name] = HostResult(
            host.name,
            host.ssh,
            HostStatus.NOT_STARTED,
            reason=f"{failures} host(s) failed (--max-failures {max_failures})",
        )
    return Rollout(fleet.name, [results[h.name] for h in fleet.hosts])


def _apply(fleet: Fleet, host: Host, time_limit: float) -> HostResult:
    """`budget-solve apply` for one host, in a process of its own."""
    assert fleet.apply is not None and host.ssh is not None
    target = host.target or fleet.apply.target
    assert target is not None
    # Each value joined to its option: none can be read as an option of its own.
    argv = [
        sys.executable,
        "-m",
        "adapters.cli",
        "apply",
        "--json",
        "--quiet",
        # Confirmed once for the whole fleet (`fleet --apply` asks, or was given --yes).
        "--yes",
        f"--target-host={host.ssh}",
        f"--profile={fleet.apply.profile}",
        f"--target={target}",
        "--limit=auto",
        f"--time-limit={time_limit:g}",
    ]
    proc = process.run(argv, check=False)
    return _outcome(host, proc.returncode, _json(proc.stdout))


def _outcome(host: Host, returncode: int, doc: dict[str, Any]) -> HostResult:
    """A host's result from the document its `apply --json` printed: on success the
    result's, on a failure `FailureDocument` (adapters/apply/results.py). Nothing is read
    from stderr: a run that printed no document failed, and says only its exit status."""
    code = doc.get("exit_code")
    if not isinstance(code, int) or code != returncode:
        return HostResult(
            host.name,
            host.ssh,
            HostStatus.FAILED,
            reason=f"apply exited with {returncode} without a report",
        )
    # What the host or its tools said goes into a report line: one line, no escapes.
    error = _one_line(str(doc.get("error") or ""))
    if code == ExitCode.OK and doc.get("status") == ApplyStatus.DONE.value:
        steps = doc.get("steps", [])
        peaks = [s.get("measured_peak_bytes") for s in steps if isinstance(s, dict)]
        peak = max((p for p in peaks if isinstance(p, int)), default=None)
        return HostResult(host.name, host.ssh, HostStatus.DONE, len(steps), peak or None)
    if code == ExitCode.NO_PLAN:
        needed = doc.get("min_feasible_budget_bytes")
        return HostResult(
            host.name,
            host.ssh,
            HostStatus.SKIPPED,
            reason=f"disk too small: {error}",
            needed_bytes=needed if isinstance(needed, int) else None,
        )
    step = doc.get("failed_step")
    return HostResult(
        host.name,
        host.ssh,
        HostStatus.FAILED,
        failed_step=step if isinstance(step, int) else None,
        reason=error or f"apply ended {doc.get('status')!r} with exit status {code}",
    )


def _one_line(text: str) -> str:
    """`text` with every control character (a newline, an escape) written as Python
    writes it in a string: `\\n`, `\\x1b`."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _json(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return doc if isinstance(doc, dict) else {}
