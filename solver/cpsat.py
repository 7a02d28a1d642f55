"""The CP-SAT model: fewest steps, then lowest peak, then least absence, under a byte budget.

Generations G_0..G_K; transition j builds G_j while G_{j-1} is still on disk. For every
component, `upgraded[c][i]` says whether c has reached its new state in G_i (monotone), and
non-vital components have `absent[c][i]`. A group of paths is on disk during transition j
when one of its old users is still old in G_{j-1} or one of its new users is new in G_j.
For vital components that is `max(t_c) >= j` and `min(t_c) <= j` over the group's users,
with t_c the step that upgrades c, so sets of users get one max/min each instead of one
implication per user and step.
"""

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

from ortools.sat.python import cp_model

from solver.components import Change
from solver.instance import Instance
from solver.plan import Generation, State, canonical

log = logging.getLogger(__name__)

# A CP-SAT literal, or a Python bool where the model already knows the answer.
Lit = Any
LinearTerms = list[tuple[int, Lit]]


class SolveStatus(Enum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Stage:
    """What one objective stage achieved."""

    status: SolveStatus
    generations: tuple[Generation, ...] | None
    objective: int | None
    bound: int | None
    seconds: float


# Values of derived variables, computed from a plan's u{c}.{i} / a{c}.{i}, for hints.
def _step_value(v: dict[str, int], *, c: int, k: int) -> int:
    return k - sum(v[f"u{c}.{i}"] for i in range(1, k))


def _any_old(v: dict[str, int], *, users: tuple[int, ...], i: int) -> int:
    return int(any(not v[f"u{c}.{i}"] for c in users))


def _any_new(v: dict[str, int], *, users: tuple[int, ...], i: int) -> int:
    return int(any(v[f"u{c}.{i}"] for c in users))


def _state_value(v: dict[str, int], *, c: int, i: int, new: bool) -> int:
    return int(v[f"u{c}.{i}"] == new and not v[f"a{c}.{i}"])


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class UpgradeModel:
    """Staged upgrade plan with at most `slots` steps under `budget` bytes."""

    def __init__(self, inst: Instance, budget: int, slots: int) -> None:
        self.inst = inst
        self.budget = budget
        self.k = slots
        self.model = cp_model.CpModel()
        self._const_true = self.model.new_constant(1)
        self._const_false = self.model.new_constant(0)
        # Derived variables and how to compute them from a plan, for complete hints.
        self._derived: list[tuple[cp_model.IntVar, Callable[[dict[str, int]], int]]] = []
        self._steps: dict[int, cp_model.IntVar] = {}
        self._states: dict[tuple[int, int, bool], cp_model.IntVar] = {}
        self._add_variables()
        self._add_constraints()

    # -- variables -------------------------------------------------------------------------

    def _add_variables(self) -> None:
        m, k = self.model, self.k
        self.upgraded: list[list[cp_model.IntVar]] = []
        self.absent: dict[int, list[cp_model.IntVar]] = {}
        for c, name in enumerate(self.inst.names):
            same = self.inst.changes[c] is Change.SAME
            row = (
                [self._const_false]
                + [
                    self._const_false if same else m.new_bool_var(f"upgraded[{name}][{i}]")
                    for i in range(1, k)
                ]
                + [self._const_true]
            )
            self.upgraded.append(row)
            if not self.inst.vital[c] and self.inst.changes[c] in (Change.UPGRADE, Change.SAME):
                self.absent[c] = (
                    [self._const_false]
                    + [m.new_bool_var(f"absent[{name}][{i}]") for i in range(1, k)]
                    + [self._const_false]
                )
        self.used = [m.new_bool_var(f"used[{j}]") for j in range(1, k + 1)]
        self.peak = m.new_int_var(0, self.budget, "peak")

    def _step_of(self, c: int) -> cp_model.IntVar:
        """t_c: the transition that upgrades c (1..K), as an integer variable."""
        cache = self._steps
        if c not in cache:
            t = self.model.new_int_var(1, self.k, f"step[{self.inst.names[c]}]")
            self.model.add(t == self.k - sum(self.upgraded[c][1 : self.k]))
            cache[c] = t
            self._derived.append((t, partial(_step_value, c=c, k=self.k)))
        return cache[c]

    # -- constraints -----------------------------------------------------------------------

    def _add_constraints(self) -> None:
        m, k, inst = self.model, self.k, self.inst
        for c in range(inst.size):
            if inst.changes[c] is Change.SAME:
                continue
            u = self.upgraded[c]
            for i in range(k):
                m.add_implication(u[i], u[i + 1])
            for j in range(1, k + 1):
                m.add_implication(u[j], self.used[j - 1]).only_enforce_if(u[j - 1].negated())
            a = self.absent.get(c)
            if a is not None:
                for i in range(1, k + 1):
                    # The version switch happens when c is on disk, so "upgraded" means "was new".
                    m.add_implication(u[i], a[i].negated()).only_enforce_if(u[i - 1].negated())
                    m.add_implication(a[i], self.used[i - 1]).only_enforce_if(a[i - 1].negated())
                    m.add_implication(a[i - 1], self.used[i - 1]).only_enforce_if(a[i].negated())
        for j in range(k - 1):
            m.add_implication(self.used[j + 1], self.used[j])
        m.add(self.used[0] == 1)

        self._old_chain: dict[tuple[int, ...], list[Lit]] = {}
        self._new_chain: dict[tuple[int, ...], list[Lit]] = {}
        rows: list[LinearTerms] = [[] for _ in range(k)]
        fixed = [0] * k
        for gi, group in enumerate(inst.groups):
            for j in range(1, k + 1):
                lits = self._presence_lits(group.old_users, group.new_users, j)
                if any(lit is True for lit in lits):
                    fixed[j - 1] += group.size
                    continue
                lits = [lit for lit in lits if lit is not False]
                if not lits:
                    continue
                if len(lits) == 1:
                    lit = lits[0]
                else:
                    lit = m.new_bool_var(f"present[{gi}][{j}]")
                    for other in lits:
                        m.add_implication(other, lit)
                rows[j - 1].append((group.size, lit))

        og, ng, mg = inst.old_glue, inst.new_glue, inst.mid_glue
        cap = self.budget - inst.always - inst.reserve
        self.rows: list[cp_model.LinearExpr] = []
        for j in range(1, k + 1):
            expr = sum(size * lit for size, lit in rows[j - 1]) + fixed[j - 1] + ng
            expr += (og if j == 1 else mg) * self.used[j - 1]
            if j < k:
                expr += (mg - ng) * self.used[j]
            for c, bytes_ in enumerate(inst.scratch):
                if bytes_ and inst.changes[c] is not Change.SAME:
                    expr += bytes_ * (self.upgraded[c][j] - self.upgraded[c][j - 1])
            m.add(expr <= cap)
            m.add(self.peak >= expr + inst.always + inst.reserve)
            self.rows.append(expr)

    def _presence_lits(self, olds: Sequence[int], news: Sequence[int], j: int) -> list[Lit]:
        """Literals any of which puts a group on disk during transition j."""
        inst = self.inst
        lits: list[Lit] = []
        vital_old = tuple(
            c for c in olds if c not in self.absent and inst.changes[c] is not Change.SAME
        )
        vital_new = tuple(
            c for c in news if c not in self.absent and inst.changes[c] is not Change.SAME
        )
        if vital_old:
            lits.append(self._old_lit(vital_old, j))
        if vital_new:
            lits.append(self._new_lit(vital_new, j))
        for c in olds:
            if c in self.absent:
                lits += [self._old_present(c, j - 1), self._old_present(c, j)]
            elif inst.changes[c] is Change.SAME:
                lits.append(True)
        for c in news:
            if c in self.absent:
                lits += [self._new_present(c, j - 1), self._new_present(c, j)]
            elif inst.changes[c] is Change.SAME:
                lits.append(True)
        return lits

    def _old_lit(self, users: tuple[int, ...], j: int) -> Lit:
        """Some user is still old in G_{j-1}: max(t_c) >= j."""
        if j == 1:
            return True
        if len(users) == 1:
            return self.upgraded[users[0]][j - 1].negated()
        chain = self._old_chain.get(users)
        if chain is None:
            top = self.model.new_int_var(1, self.k, f"last_old[{len(self._old_chain)}]")
            self.model.add_max_equality(top, [self._step_of(c) for c in users])
            chain = [True, True]
            for jj in range(2, self.k + 1):
                ge = self.model.new_bool_var(f"old_left[{len(self._old_chain)}][{jj}]")
                self.model.add(top <= jj - 1).only_enforce_if(ge.negated())
                chain.append(ge)
                self._derived.append((ge, partial(_any_old, users=users, i=jj - 1)))
            self._old_chain[users] = chain
        return chain[j]

    def _new_lit(self, users: tuple[int, ...], j: int) -> Lit:
        """Some user is new in G_j: min(t_c) <= j."""
        if j == self.k:
            return True
        if len(users) == 1:
            return self.upgraded[users[0]][j]
        chain = self._new_chain.get(users)
        if chain is None:
            low = self.model.new_int_var(1, self.k, f"first_new[{len(self._new_chain)}]")
            self.model.add_min_equality(low, [self._step_of(c) for c in users])
            chain = [False]
            for jj in range(1, self.k):
                le = self.model.new_bool_var(f"new_in[{len(self._new_chain)}][{jj}]")
                self.model.add(low >= jj + 1).only_enforce_if(le.negated())
                chain.append(le)
                self._derived.append((le, partial(_any_new, users=users, i=jj)))
            chain.append(True)
            self._new_chain[users] = chain
        return chain[j]

    def _old_present(self, c: int, i: int) -> Lit:
        return self._state_lit(c, i, new=False)

    def _new_present(self, c: int, i: int) -> Lit:
        return self._state_lit(c, i, new=True)

    def _state_lit(self, c: int, i: int, *, new: bool) -> Lit:
        if i == 0:
            return not new
        if i == self.k:
            return new
        cache = self._states
        key = (c, i, new)
        if key not in cache:
            u, a = self.upgraded[c][i], self.absent[c][i]
            lit = self.model.new_bool_var(f"{'new' if new else 'old'}[{self.inst.names[c]}][{i}]")
            version = u if new else u.negated()
            # lit <=> version and not absent
            self.model.add_bool_and([version, a.negated()]).only_enforce_if(lit)
            self.model.add_bool_or([version.negated(), a, lit])
            cache[key] = lit
            self._derived.append((lit, partial(_state_value, c=c, i=i, new=new)))
        return cache[key]

    # -- hints and solving -----------------------------------------------------------------

    def hint(self, generations: Sequence[Generation]) -> None:
        """Give CP-SAT a complete starting plan (padded with null steps to K)."""
        gens = list(generations) + [generations[-1]] * (self.k + 1 - len(generations))
        if len(gens) != self.k + 1:
            raise ValueError("hint has more steps than the model has slots")
        self.model.clear_hints()  # type: ignore[no-untyped-call]
        values: dict[str, int] = {}
        for c in range(self.inst.size):
            seen_new = False
            for i, gen in enumerate(gens):
                seen_new = seen_new or gen[c] == State.NEW
                values[f"u{c}.{i}"] = (
                    int(seen_new) if self.inst.changes[c] is not Change.SAME else int(i == self.k)
                )
                values[f"a{c}.{i}"] = int(gen[c] == State.ABSENT)
                if 0 < i < self.k:
                    if self.inst.changes[c] is not Change.SAME:
                        self.model.add_hint(self.upgraded[c][i], values[f"u{c}.{i}"])
                    if c in self.absent:
                        self.model.add_hint(self.absent[c][i], values[f"a{c}.{i}"])
        steps = len(generations) - 1
        for j, var in enumerate(self.used, start=1):
            self.model.add_hint(var, int(j <= steps))
        for var, fn in self._derived:
            self.model.add_hint(var, fn(values))

    def solve(
        self,
        objective: str,
        *,
        time_limit: float,
        workers: int,
        at_most: dict[str, int] | None = None,
        deterministic: bool = False,
    ) -> Stage:
        """Minimise `steps`, `peak` or `absence`, with earlier stages' optima as limits."""
        m = self.model
        m.clear_objective()  # type: ignore[no-untyped-call]
        terms = {
            "steps": sum(self.used),
            "peak": self.peak,
            "absence": sum(v for a in self.absent.values() for v in a[1:-1]),
        }
        for name, limit in (at_most or {}).items():
            m.add(terms[name] <= limit)
        m.minimize(terms[objective])
        solver = cp_model.CpSolver()
        if deterministic:
            # The same answer on every machine and every run: a budget of CP-SAT's own work
            # units (about seconds) instead of wall time, and one worker.
            solver.parameters.max_deterministic_time = max(0.05, time_limit)
            solver.parameters.num_workers = 1
        else:
            solver.parameters.max_time_in_seconds = max(0.05, time_limit)
            solver.parameters.num_workers = workers
        if log.isEnabledFor(logging.DEBUG):
            solver.parameters.log_search_progress = True
            solver.log_callback = log.debug
        start = time.monotonic()
        code = solver.solve(m)
        seconds = time.monotonic() - start
        status = {
            cp_model.OPTIMAL: SolveStatus.OPTIMAL,
            cp_model.FEASIBLE: SolveStatus.FEASIBLE,
            cp_model.INFEASIBLE: SolveStatus.INFEASIBLE,
        }.get(code, SolveStatus.UNKNOWN)
        log.debug("cp-sat %s: %s in %.2fs", objective, status.value, seconds)
        if status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
            gens = self._extract(solver)
            bound = math.ceil(solver.best_objective_bound - 1e-6)
            return Stage(status, gens, int(solver.objective_value), bound, seconds)
        return Stage(status, None, None, None, seconds)

    def _extract(self, solver: cp_model.CpSolver) -> tuple[Generation, ...]:
        gens: list[Generation] = []
        for i in range(self.k + 1):
            gen = []
            for c in range(self.inst.size):
                a = self.absent.get(c)
                if a is not None and solver.boolean_value(a[i]):
                    gen.append(int(State.ABSENT))
                elif self.inst.changes[c] is Change.SAME:
                    gen.append(int(State.NEW if i == self.k else State.OLD))
                else:
                    up = solver.boolean_value(self.upgraded[c][i])
                    gen.append(int(State.NEW if up else State.OLD))
            gens.append(tuple(gen))
        return tuple(canonical(self.inst, gens))
