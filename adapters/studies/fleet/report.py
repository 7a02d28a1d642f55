"""A fleet's answers per host, its totals and disk-size table, and the JSON document
`fleet --json` prints (`FleetDocument`)."""

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from typing import TypedDict

from adapters.studies.fleet.model import Fleet
from adapters.studies.fleet.solving import Answer


class Verdict(StrEnum):
    """What the update is for one host."""

    ONE_STEP = "one-step"
    STEPS = "steps"
    CANNOT = "cannot"


@dataclass(frozen=True)
class HostRow:
    """One host's answer (a row of the report)."""

    name: str
    disk_bytes: int
    budget_bytes: int
    closure: str
    steps: int | None
    verdict: Verdict
    needed_disk_bytes: int | None  # with CANNOT: the disk that would do


@dataclass(frozen=True)
class Totals:
    hosts: int
    one_step: int
    multi_step: int
    cannot: int
    by_steps: dict[str, int]  # "1", "2", ... and "cannot"


class HostJson(TypedDict):
    name: str
    disk_bytes: int
    budget_bytes: int
    closure: str
    steps: int | None
    verdict: str  # a Verdict
    needed_disk_bytes: int | None


class TotalsJson(TypedDict):
    hosts: int
    one_step: int
    multi_step: int
    cannot: int
    by_steps: dict[str, int]


class ClosureJson(TypedDict):
    closure: str
    hosts: int
    paths: int
    target_paths: int
    one_step_bytes: int
    min_bytes: int
    need_bytes: dict[str, int]  # by steps
    proven: dict[str, bool]  # by steps: is need_bytes the smallest budget


class FleetDocument(TypedDict):
    """What `fleet --json` prints."""

    fleet: str
    hosts: list[HostJson]
    totals: TotalsJson
    disk_for_steps_bytes: dict[str, int]
    min_disk_bytes: int
    closures: list[ClosureJson]
    notes: list[str]


@dataclass
class Report:
    fleet: Fleet
    answers: dict[str, Answer]  # by closure key

    def hosts(self) -> list[HostRow]:
        """One row per host, in the file's order."""
        rows = []
        for host in self.fleet.hosts:
            answer = self.answers[host.closure]
            budget = self.fleet.budget(host)
            k = answer.steps[budget]
            if k is None:
                verdict = Verdict.CANNOT
            else:
                verdict = Verdict.ONE_STEP if k <= 1 else Verdict.STEPS
            needed = answer.curve.min_bytes + self.fleet.overhead if k is None else None
            label = self.fleet.labels[host.closure]
            rows.append(HostRow(host.name, host.disk, budget, label, k, verdict, needed))
        return rows

    def totals(self) -> Totals:
        """How many hosts upgrade in one step, in several, or not at all."""
        rows = self.hosts()
        by_steps: dict[str, int] = defaultdict(int)
        for r in rows:
            by_steps[str(r.steps) if r.steps is not None else Verdict.CANNOT.value] += 1
        return Totals(
            hosts=len(rows),
            one_step=sum(r.verdict is Verdict.ONE_STEP for r in rows),
            multi_step=sum(r.verdict is Verdict.STEPS for r in rows),
            cannot=sum(r.verdict is Verdict.CANNOT for r in rows),
            by_steps=dict(sorted(by_steps.items())),
        )

    def disk_for_steps(self) -> dict[int, int]:
        """The smallest disk with which every host upgrades in at most k steps."""
        return {
            k: max(a.curve.need[k] for a in self.answers.values()) + self.fleet.overhead
            for k in range(1, self.fleet.max_steps + 1)
        }

    @property
    def min_disk_bytes(self) -> int:
        """No disk smaller than this upgrades every host, in any number of steps."""
        return max(a.curve.min_bytes for a in self.answers.values()) + self.fleet.overhead

    def to_json(self) -> FleetDocument:
        """The report as `fleet --json` prints it."""
        t = self.totals()
        answers = sorted(self.answers.items(), key=lambda kv: self.fleet.labels[kv[0]])
        return {
            "fleet": self.fleet.name,
            "hosts": [_host_json(r) for r in self.hosts()],
            "totals": {
                "hosts": t.hosts,
                "one_step": t.one_step,
                "multi_step": t.multi_step,
                "cannot": t.cannot,
                "by_steps": t.by_steps,
            },
            "disk_for_steps_bytes": {str(k): v for k, v in self.disk_for_steps().items()},
            "min_disk_bytes": self.min_disk_bytes,
            "closures": [self._closure_json(key, a) for key, a in answers],
            "notes": self.fleet.notes,
        }

    def _closure_json(self, key: str, a: Answer) -> ClosureJson:
        return {
            "closure": self.fleet.labels[key],
            "hosts": sum(h.closure == key for h in self.fleet.hosts),
            "paths": a.paths,
            "target_paths": a.target_paths,
            "one_step_bytes": a.curve.one_step_bytes,
            "min_bytes": a.curve.min_bytes,
            "need_bytes": {str(k): v for k, v in sorted(a.curve.need.items())},
            "proven": {str(k): v for k, v in sorted(a.curve.proven.items())},
        }


def _host_json(r: HostRow) -> HostJson:
    return {
        "name": r.name,
        "disk_bytes": r.disk_bytes,
        "budget_bytes": r.budget_bytes,
        "closure": r.closure,
        "steps": r.steps,
        "verdict": r.verdict.value,
        "needed_disk_bytes": r.needed_disk_bytes,
    }
