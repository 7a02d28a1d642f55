"""Capacity planning for a fleet: which hosts can take an update, in how many steps, and
how big their disks must be.

    name: web fleet
    update:                      # changes, as in a scenario
      - bump: openssl
        grow: 3%
    overhead: 1.5G               # disk used outside the store; store budget = disk - overhead
    reserve: 200M
    max_steps: 3                 # the disk-size table covers 1..max_steps steps
    profiles:                    # closures shared by many hosts
      web: examples/nixos-current.json
      db: {generate: {paths: 1500, components: 90, seed: 3}}
    hosts:
      - {name: web-01, disk: 10G, profile: web, ssh: root@web-01}
      - {name: db-01, disk: 20G, current: db-01.json}
    apply:                       # for `fleet --apply`: what each host with `ssh:` gets
      profile: /nix/var/nix/profiles/per-user/root/env
      target: /nix/store/...-env # read here; a host may name its own `target:`

Hosts with identical closures (and the same update) are solved once; the distinct
closures are solved in parallel on local processes, or on a Dask cluster.
"""

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adapters.nixstore.ssh import check_host as ssh_address
from adapters.studies import schema as y
from adapters.studies.changes import parse_change, read_current
from solver.closure import Closure
from solver.errors import InputError
from solver.instance import Problem, build_instance
from solver.search.greedy import min_peak_plan
from solver.validate import validate
from solver.whatif.capacity import Curve, curve, heuristic_plan
from solver.whatif.scenario import Edit, ScenarioError, apply_change, apply_changes

# The disk-size table covers 1..max_steps steps; past a few dozen it says nothing new.
MAX_STEPS = 50


@dataclass(frozen=True)
class Host:
    name: str
    disk: int
    closure: str  # key of its distinct closure
    ssh: str | None = None  # [USER@]HOST, for `fleet --apply`
    target: str | None = None  # its own target for `fleet --apply`, else the fleet's


@dataclass(frozen=True)
class Apply:
    """What `fleet --apply` upgrades on each host: a profile there, to a target here."""

    profile: str
    target: str | None


@dataclass
class Fleet:
    name: str
    hosts: list[Host]
    closures: dict[str, Closure]  # by key
    labels: dict[str, str]  # key -> profile name or source
    changes: list[Edit]
    overhead: int = 0
    reserve: int = 0
    max_steps: int = 3
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    apply: Apply | None = None

    def budget(self, host: Host) -> int:
        return max(0, host.disk - self.overhead)


def fingerprint(closure: Closure) -> str:
    """Identical closures, whatever file they came from, get the same key."""
    h = hashlib.sha256()
    for info in sorted(closure.infos(), key=lambda i: i.path):
        h.update(f"{info.path} {info.nar_size} {' '.join(sorted(info.references))}\n".encode())
    h.update(" ".join(sorted(closure.roots)).encode())
    return h.hexdigest()[:16]


def load(path: Path) -> Fleet:
    data, where = y.load(path)
    m = y.mapping(
        data,
        where,
        required=["hosts"],
        optional=[
            "update",
            "name",
            "description",
            "overhead",
            "reserve",
            "max_steps",
            "profiles",
            "seed",
            "apply",
        ],
    )
    base = path.parent
    profiles: dict[str, Closure] = {}
    if "profiles" in m:
        at = where.key(m, "profiles")
        raw = m["profiles"]
        pm = y.mapping(raw, at, optional=list(raw) if isinstance(raw, dict) else [])
        for name, value in pm.items():
            profiles[name] = read_current(value, at.key(pm, name), base)
    closures: dict[str, Closure] = {}
    labels: dict[str, str] = {}
    by_source: dict[str, str] = {}

    def key_of(closure: Closure, label: str) -> str:
        key = fingerprint(closure)
        closures.setdefault(key, closure)
        labels.setdefault(key, label)
        return key

    profile_keys = {name: key_of(c, name) for name, c in profiles.items()}
    at = where.key(m, "hosts")
    if not isinstance(m["hosts"], list) or not m["hosts"]:
        raise at.error("expected a non-empty list of hosts")
    hosts = []
    seen: set[str] = set()
    # Hosts by the address they are upgraded through, and where that address is named.
    addresses: dict[str, tuple[str, y.Where]] = {}
    for i, value in enumerate(m["hosts"]):
        hw = at.item(m["hosts"], i)
        h = y.mapping(
            value,
            hw,
            required=["name", "disk"],
            optional=["profile", "current", "ssh", "target"],
        )
        raw_name = h["name"]
        if isinstance(raw_name, int | float) and not isinstance(raw_name, bool):
            raw_name = str(raw_name)  # `name: 42` is a host called 42
        name = _text(raw_name, hw.key(h, "name"))
        if name in seen:
            raise hw.key(h, "name").error(f"host {name!r} is listed twice")
        seen.add(name)
        ssh = None
        if "ssh" in h:
            sw = hw.key(h, "ssh")
            ssh = y.string(h["ssh"], sw)
            try:
                address = ssh_address(ssh, None)
            except InputError as e:
                raise sw.error(str(e)) from None
            same = _same_host(address)
            if same in addresses:
                first, fw = addresses[same]
                raise sw.error(
                    f"host {name!r}: {address!r} is the address of host {first!r} too "
                    f"({fw.path}, line {fw.line}); list each machine once"
                )
            addresses[same] = (name, sw)
        disk = y.size(h["disk"], hw.key(h, "disk"))
        kind = y.one_of(h, hw, ["profile", "current"])
        if kind == "profile":
            profile = y.string(h["profile"], hw.key(h, "profile"))
            if profile not in profile_keys:
                known = ", ".join(sorted(profile_keys)) or "none"
                raise hw.key(h, "profile").error(f"no profile {profile!r} (profiles: {known})")
            key = profile_keys[profile]
        else:
            source = h["current"]
            label = source if isinstance(source, str) else f"{name} (generated)"
            if isinstance(source, str) and source in by_source:
                key = by_source[source]
            else:
                key = key_of(read_current(source, hw.key(h, "current"), base), label)
                if isinstance(source, str):
                    by_source[source] = key
        own = _text(h["target"], hw.key(h, "target")) if "target" in h else None
        if own is not None and ssh is None:
            raise hw.key(h, "target").error("a target is for a host with an ssh: address")
        hosts.append(Host(name, disk, key, ssh, own))

    notes: list[str] = []
    seed = y.integer(m.get("seed", 0), where.key(m, "seed"))
    changes: list[Edit] = []
    used = {h.closure for h in hosts}
    if "update" not in m and "apply" not in m:
        raise where.error(
            "missing key 'update' (only a fleet to roll out, with apply:, goes without)"
        )
    uw = where.key(m, "update")
    if "update" in m and (not isinstance(m["update"], list) or not m["update"]):
        raise uw.error("expected a non-empty list of changes")
    for i, value in enumerate(m.get("update", [])):
        item = uw.item(m["update"], i)
        for n, key in enumerate(sorted(used)):
            # Every change must apply to every closure that a host runs; the first
            # closure's reading of it is the update.
            parsed = parse_change(value, item, base, closures[key], notes)
            for change in parsed:
                try:
                    apply_change(closures[key], change, random.Random(seed), item.path)
                except ScenarioError as e:
                    raise item.error(f"{labels[key]}: {e}".replace(f"{item.path}: ", "")) from e
            if n == 0:
                changes.extend(parsed)
    apply = None
    if "apply" in m:
        aw = where.key(m, "apply")
        a = y.mapping(m["apply"], aw, required=["profile"], optional=["target"])
        target = _text(a["target"], aw.key(a, "target")) if "target" in a else None
        apply = Apply(_text(a["profile"], aw.key(a, "profile")), target)
    return Fleet(
        apply=apply,
        name=_text(m.get("name", path.stem), where.key(m, "name")),
        hosts=hosts,
        closures={k: c for k, c in closures.items() if k in used},
        labels=labels,
        changes=changes,
        overhead=y.size(m.get("overhead", 0), where.key(m, "overhead")),
        reserve=y.size(m.get("reserve", 0), where.key(m, "reserve")),
        max_steps=y.integer(
            m.get("max_steps", 3), where.key(m, "max_steps"), minimum=1, maximum=MAX_STEPS
        ),
        seed=seed,
        notes=notes,
    )


def _text(value: Any, where: y.Where) -> str:
    """A non-empty string without control characters: names and paths are printed in
    reports (an escape would be a terminal command there) and passed on to `apply` (a
    newline would be a second line in its errors)."""
    text = y.string(value, where)
    if not text.isprintable():
        raise where.error(f"{text!r}: no control characters (newline, tab, escape, NUL)")
    return text


def _same_host(address: str) -> str:
    """What two addresses of one host have in common: the user as it is, the host name in
    lower case (host names are case-insensitive)."""
    user, at, name = address.rpartition("@")
    return f"{user}{at}{name.lower()}"


@dataclass(frozen=True)
class FleetProgress:
    """How far a fleet run is: hosts answered (closures solved once for all their hosts)."""

    hosts: int
    hosts_total: int
    closures: int
    closures_total: int


@dataclass(frozen=True)
class Task:
    """One distinct closure to solve: its update, and the store budgets its hosts have."""

    key: str
    closure: Closure
    changes: tuple[Edit, ...]
    budgets: tuple[int, ...]
    reserve: int
    max_steps: int
    seed: int


@dataclass
class Answer:
    key: str
    paths: int
    target_paths: int
    curve: Curve
    steps: dict[int, int | None]  # by budget


def solve(task: Task) -> Answer:
    """The update on one closure: its budget curve, and the steps under each host budget."""
    target = apply_changes(task.closure, task.changes, seed=task.seed)
    problem = Problem.of(task.closure, target, reserve=task.reserve)
    inst = build_instance(problem)
    shape = curve(inst, task.max_steps)
    lowest = min_peak_plan(inst)
    steps: dict[int, int | None] = {}
    for budget in task.budgets:
        k = shape.steps_at(budget)
        if k is None and budget >= shape.min_bytes:
            plan = heuristic_plan(inst, budget, lowest)
            if plan is not None:
                validate(problem, plan, budget)
                k = len(plan)
        steps[budget] = k
    return Answer(task.key, len(task.closure), len(target), shape, steps)


def tasks(fleet: Fleet) -> list[Task]:
    budgets: dict[str, set[int]] = defaultdict(set)
    for host in fleet.hosts:
        budgets[host.closure].add(fleet.budget(host))
    return [
        Task(
            key,
            fleet.closures[key],
            tuple(fleet.changes),
            tuple(sorted(budgets[key])),
            fleet.reserve,
            fleet.max_steps,
            fleet.seed,
        )
        for key in sorted(budgets)
    ]


def run_local(todo: list[Task], workers: int, done: Callable[[Answer], None]) -> list[Answer]:
    if workers <= 1 or len(todo) <= 1:
        answers = []
        for t in todo:
            answers.append(solve(t))
            done(answers[-1])
        return answers
    out = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(solve, t) for t in todo]
        for f in as_completed(futures):
            out.append(f.result())
            done(out[-1])
    return out


def run_dask(todo: list[Task], scheduler: str, done: Callable[[Answer], None]) -> list[Answer]:
    from dask.distributed import Client
    from dask.distributed import as_completed as dask_completed

    out = []
    with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = client.map(solve, todo, pure=False)
        for f in dask_completed(futures):  # type: ignore[no-untyped-call]
            out.append(f.result())
            done(out[-1])
    return out


@dataclass(frozen=True)
class HostRow:
    """One host's answer (a row of the report; the JSON keys are these names)."""

    name: str
    disk_bytes: int
    budget_bytes: int
    closure: str
    steps: int | None
    verdict: str  # "one-step", "steps" or "cannot"
    needed_disk_bytes: int | None  # with "cannot": the disk that would do


@dataclass(frozen=True)
class Totals:
    hosts: int
    one_step: int
    multi_step: int
    cannot: int
    by_steps: dict[str, int]


@dataclass
class Report:
    fleet: Fleet
    answers: dict[str, Answer]

    def hosts(self) -> list[HostRow]:
        rows = []
        for host in self.fleet.hosts:
            answer = self.answers[host.closure]
            budget = self.fleet.budget(host)
            k = answer.steps[budget]
            verdict = "cannot" if k is None else "one-step" if k <= 1 else "steps"
            needed = answer.curve.min_bytes + self.fleet.overhead if k is None else None
            rows.append(
                HostRow(
                    host.name,
                    host.disk,
                    budget,
                    self.fleet.labels[host.closure],
                    k,
                    verdict,
                    needed,
                )
            )
        return rows

    def totals(self) -> Totals:
        rows = self.hosts()
        by_steps: dict[str, int] = defaultdict(int)
        for r in rows:
            by_steps[str(r.steps) if r.steps is not None else "cannot"] += 1
        return Totals(
            hosts=len(rows),
            one_step=sum(r.verdict == "one-step" for r in rows),
            multi_step=sum(r.verdict == "steps" for r in rows),
            cannot=sum(r.verdict == "cannot" for r in rows),
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

    def to_json(self) -> dict[str, Any]:
        return {
            "fleet": self.fleet.name,
            "hosts": [asdict(r) for r in self.hosts()],
            "totals": asdict(self.totals()),
            "disk_for_steps_bytes": {str(k): v for k, v in self.disk_for_steps().items()},
            "min_disk_bytes": self.min_disk_bytes,
            "closures": [
                {
                    "closure": self.fleet.labels[key],
                    "hosts": sum(h.closure == key for h in self.fleet.hosts),
                    "paths": a.paths,
                    "target_paths": a.target_paths,
                    "one_step_bytes": a.curve.one_step_bytes,
                    "min_bytes": a.curve.min_bytes,
                    "need_bytes": {str(k): v for k, v in sorted(a.curve.need.items())},
                    "proven": {str(k): v for k, v in sorted(a.curve.proven.items())},
                }
                for key, a in sorted(self.answers.items(), key=lambda kv: self.fleet.labels[kv[0]])
            ],
            "notes": self.fleet.notes,
        }


def run(
    fleet: Fleet,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[FleetProgress], None] = lambda _: None,
) -> Report:
    todo = tasks(fleet)
    weight: dict[str, int] = defaultdict(int)
    for host in fleet.hosts:
        weight[host.closure] += 1
    state = {"closures": 0, "hosts": 0}

    def done(answer: Answer) -> None:
        state["closures"] += 1
        state["hosts"] += weight[answer.key]
        progress(FleetProgress(state["hosts"], len(fleet.hosts), state["closures"], len(todo)))

    progress(FleetProgress(0, len(fleet.hosts), 0, len(todo)))
    if scheduler:
        answers = run_dask(todo, scheduler, done)
    else:
        answers = run_local(todo, workers, done)
    return Report(fleet, {a.key: a for a in answers})
