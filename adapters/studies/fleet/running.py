"""Solving a fleet's distinct closures in parallel, on local processes or a Dask cluster,
with progress counted in hosts."""

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from adapters.studies.fleet.model import Fleet
from adapters.studies.fleet.report import Report
from adapters.studies.fleet.solving import Answer, Task, solve, tasks
from solver.errors import InputError


@dataclass(frozen=True)
class FleetProgress:
    """How far a fleet run is: hosts answered (closures solved once for all their hosts)."""

    hosts: int
    hosts_total: int
    closures: int
    closures_total: int


def run_local(todo: list[Task], workers: int, done: Callable[[Answer], None]) -> list[Answer]:
    """Solve on `workers` local processes (never more than there are tasks)."""
    workers = min(workers, len(todo))
    if workers <= 1:
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
    """Solve on the Dask distributed cluster whose scheduler is at `scheduler`."""
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        raise InputError(
            "--scheduler needs Dask, which is not installed: pip install 'budget-solve[fleet]'"
        ) from None

    out = []
    with Client(scheduler, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = client.map(solve, todo, pure=False)
        for f in dask_completed(futures):  # type: ignore[no-untyped-call]
            out.append(f.result())
            done(out[-1])
    return out


def run(
    fleet: Fleet,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[FleetProgress], None] = lambda _: None,
) -> Report:
    """Solve every distinct closure of `fleet` once, and report per host."""
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
