"""The CP-SAT model: fewest steps, then lowest peak, then least absence, under a byte budget.

Generations G_0..G_K; transition j builds G_j while G_{j-1} is still on disk. For every
component, `upgraded[c][i]` says whether c has reached its new state in G_i (monotone), and
non-vital components have `absent[c][i]`. A group of paths is on disk during transition j
when one of its old users is still old in G_{j-1} or one of its new users is new in G_j.
Groups with the same users share one literal per side and transition, implied by each
user's literal: the form whose LP relaxation proves "fewer steps cannot fit" soonest.
"""

from collections.abc import Sequence
from typing import Any

from ortools.sat.python import cp_model

from solver.components import Change
from solver.deadline import Deadline
from solver.instance import Group, Instance
from solver.model.solving import Objective, Solution, run
from solver.plan import Generation, State, canonical, evaluate

# A CP-SAT literal, or a Python bool where the model already knows the answer.
Lit = Any
LinearTerms = list[tuple[int, Lit]]


def _value(lit: Lit, values: dict[int, int]) -> int:
    """A literal's value under a complete assignment of the variables it is made of."""
    if isinstance(lit, bool):
        return int(lit)
    index = lit.index
    return values[index] if index >= 0 else 1 - values[-index - 1]


def _covers(
    family: set[tuple[int, ...]],
) -> dict[tuple[int, ...], tuple[list[tuple[int, ...]], list[int]]]:
    """For each user set, smaller sets of the family inside it and the users they leave.

    Closures nest: the users of a library include the users of every library that depends
    on it. "Some user of U is new" then follows from the same literal of such subsets, so
    a set costs one implication per part instead of one per user. Largest parts first.
    """
    sets = sorted((u for u in family if len(u) > 1), key=len)
    masks = {u: sum(1 << c for c in u) for u in sets}
    out: dict[tuple[int, ...], tuple[list[tuple[int, ...]], list[int]]] = {}
    for i, users in enumerate(sets):
        whole = rest = masks[users]
        parts = []
        for smaller in reversed(sets[:i]):
            mask = masks[smaller]
            if mask & ~whole == 0 and (mask & rest).bit_count() > 1:
                parts.append(smaller)
                rest &= ~mask
                if rest.bit_count() < 2:
                    break
        out[users] = (parts, [c for c in users if rest >> c & 1])
    return out


class UpgradeModel:
    """Staged upgrade plan with at most `slots` steps under `budget` bytes."""

    def __init__(self, inst: Instance, budget: int, slots: int, *, overflow: int = 0) -> None:
        """With `overflow`, a step may exceed the budget by up to that many bytes, and the
        "overflow" objective is their sum over the steps: zero is a plan within budget."""
        self.inst = inst
        self.budget = budget
        self.k = slots
        self.overflow = overflow
        self.model = cp_model.CpModel()
        self._const_true = self.model.new_constant(1)
        self._const_false = self.model.new_constant(0)
        # Derived variables, each the AND (True) or the OR (False) of literals created
        # before it: computed from a plan, in order, for complete hints.
        self._derived: list[tuple[cp_model.IntVar, bool, list[Lit]]] = []
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
        self.peak = m.new_int_var(0, self.budget + self.overflow, "peak")
        self.over = [m.new_int_var(0, self.overflow, f"over[{j}]") for j in range(1, k + 1)]

    # -- constraints -----------------------------------------------------------------------

    def _add_constraints(self) -> None:
        m, k, inst = self.model, self.k, self.inst
        for c in range(inst.size):
            a = self.absent.get(c)
            if a is not None:
                # Leaving and coming back are changes too, unchanged components' included:
                # the step they happen in is used.
                for i in range(1, k + 1):
                    m.add_implication(a[i], self.used[i - 1]).only_enforce_if(a[i - 1].negated())
                    m.add_implication(a[i - 1], self.used[i - 1]).only_enforce_if(a[i].negated())
            if inst.changes[c] is Change.SAME:
                continue
            u = self.upgraded[c]
            for i in range(k):
                m.add_implication(u[i], u[i + 1])
            for j in range(1, k + 1):
                m.add_implication(u[j], self.used[j - 1]).only_enforce_if(u[j - 1].negated())
            if a is not None:
                for i in range(1, k + 1):
                    # The version switch happens when c is on disk, so "upgraded" means "was new".
                    m.add_implication(u[i], a[i].negated()).only_enforce_if(u[i - 1].negated())
        for j in range(k - 1):
            m.add_implication(self.used[j + 1], self.used[j])
        m.add(self.used[0] == 1)

        self._any: dict[tuple[tuple[int, ...], int, bool], Lit] = {}
        # Each group's users that change in one step, never absent, on either side.
        moving = [(self._moving(g.old_users), self._moving(g.new_users)) for g in inst.groups]
        self._covers = {new: _covers({users[new] for users in moving}) for new in (False, True)}
        rows: list[LinearTerms] = [[] for _ in range(k)]
        fixed = [0] * k
        for gi, group in enumerate(inst.groups):
            for j in range(1, k + 1):
                lits = self._presence_lits(group, moving[gi], j)
                if any(lit is True for lit in lits):
                    fixed[j - 1] += group.size
                    continue
                lits = [lit for lit in lits if lit is not False]
                if not lits:
                    continue
                if len(lits) == 1:
                    lit = lits[0]
                else:
                    lit = self._or(lits, f"present[{gi}][{j}]")
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
            if self.overflow:
                # A slot left unused repeats the target, which the last step holds already.
                m.add(expr <= cap + self.over[j - 1]).only_enforce_if(self.used[j - 1])
                m.add(self.over[j - 1] == 0).only_enforce_if(self.used[j - 1].negated())
            else:
                m.add(expr <= cap)
            m.add(self.peak >= expr + inst.always + inst.reserve)
            self.rows.append(expr)

    def _presence_lits(
        self, group: Group, moving: tuple[tuple[int, ...], tuple[int, ...]], j: int
    ) -> list[Lit]:
        """Literals any of which puts a group on disk during transition j; `moving`: its
        old and new users that change in one step, never absent."""
        inst = self.inst
        lits: list[Lit] = []
        olds, news = group.old_users, group.new_users
        vital_old, vital_new = moving
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

    def _moving(self, users: Sequence[int]) -> tuple[int, ...]:
        """The users that change version in one step, never absent."""
        inst = self.inst
        return tuple(
            c for c in users if c not in self.absent and inst.changes[c] is not Change.SAME
        )

    def _or(self, lits: list[Lit], name: str) -> cp_model.IntVar:
        """A literal that is true when one of `lits` is: each implies it. Minimising the
        bytes it stands for keeps it false otherwise, and this form is as strong as it gets
        in the LP relaxation, which is what proves that fewer steps cannot fit."""
        var = self.model.new_bool_var(name)
        for lit in lits:
            self.model.add_implication(lit, var)
        self._derived.append((var, False, lits))
        return var

    def _old_lit(self, users: tuple[int, ...], j: int) -> Lit:
        """Some user is still old in G_{j-1}."""
        if j == 1:
            return True
        if len(users) == 1:
            return self.upgraded[users[0]][j - 1].negated()
        return self._shared(users, j, new=False)

    def _new_lit(self, users: tuple[int, ...], j: int) -> Lit:
        """Some user is new in G_j."""
        if j == self.k:
            return True
        if len(users) == 1:
            return self.upgraded[users[0]][j]
        return self._shared(users, j, new=True)

    def _shared(self, users: tuple[int, ...], j: int, *, new: bool) -> Lit:
        # Groups with the same users share one literal per transition and side, implied by
        # the literals of smaller user sets inside this one and by the remaining users.
        key = (users, j, new)
        if key not in self._any:
            parts, rest = self._covers[new][users]
            lits = [self._shared(part, j, new=new) for part in parts]
            for c in rest:
                lits.append(self.upgraded[c][j] if new else self.upgraded[c][j - 1].negated())
            side = "new" if new else "old"
            self._any[key] = self._or(lits, f"any_{side}[{len(self._any)}][{j}]")
        return self._any[key]

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
            self._derived.append((lit, True, [version, a.negated()]))
        return cache[key]

    # -- hints and solving -----------------------------------------------------------------

    def hint(self, generations: Sequence[Generation]) -> None:
        """Give CP-SAT a complete starting plan (padded with null steps to K)."""
        gens = list(generations) + [generations[-1]] * (self.k + 1 - len(generations))
        if len(gens) != self.k + 1:
            raise ValueError("hint has more steps than the model has slots")
        self.model.clear_hints()  # type: ignore[no-untyped-call]
        values = {self._const_false.index: 0, self._const_true.index: 1}
        hints: list[tuple[cp_model.IntVar, int]] = []
        for c in range(self.inst.size):
            seen_new = False
            absent = self.absent.get(c)
            for i, gen in enumerate(gens):
                seen_new = seen_new or gen[c] == State.NEW
                if 0 < i < self.k:
                    if self.inst.changes[c] is not Change.SAME:
                        hints.append((self.upgraded[c][i], int(seen_new)))
                    if absent is not None:
                        hints.append((absent[i], int(gen[c] == State.ABSENT)))
        steps = len(generations) - 1
        hints += [(var, int(j <= steps)) for j, var in enumerate(self.used, start=1)]
        if self.overflow:
            peaks = [step.peak_bytes for step in evaluate(self.inst, generations).steps]
            over = [min(self.overflow, max(0, peak - self.budget)) for peak in peaks]
            hints += list(zip(self.over, over + [0] * (self.k - steps), strict=True))
        values.update((var.index, value) for var, value in hints)
        for var, conjunction, lits in self._derived:
            combine = all if conjunction else any
            value = int(combine(_value(lit, values) for lit in lits))
            values[var.index] = value
            hints.append((var, value))
        for var, value in hints:
            self.model.add_hint(var, value)

    def solve(
        self,
        objective: Objective,
        deadline: Deadline,
        *,
        workers: int,
        at_most: dict[Objective, int] | None = None,
        gap: float = 0.0,
        patience: float | None = None,
    ) -> Solution:
        """Minimise `objective`, with earlier objectives' optima as limits (`at_most`).

        With `gap`, the search stops once the objective is within that fraction of its
        proven bound; the status then says OPTIMAL only if the bound meets it. With
        `patience`, it stops once no better solution has come for that many seconds.
        """
        m = self.model
        m.clear_objective()  # type: ignore[no-untyped-call]
        terms = {
            Objective.STEPS: sum(self.used),
            Objective.PEAK: self.peak,
            Objective.ABSENCE: sum(v for a in self.absent.values() for v in a[1:-1]),
            Objective.OVERFLOW: sum(self.over),
        }
        for limited, limit in (at_most or {}).items():
            m.add(terms[limited] <= limit)
        m.minimize(terms[objective])
        return run(m, objective, deadline, workers, gap, patience, self._extract)

    def _extract(self, solver: cp_model.CpSolver) -> tuple[Generation, ...]:
        """The plan of a solution, without its null steps."""
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
