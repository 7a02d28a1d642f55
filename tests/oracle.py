"""An exhaustive oracle for tiny upgrade problems, written apart from the planner.

`exhaustive(problem)` enumerates every generation of the model and every step between
two of them, straight from the problem's raw closures (plain sets of store paths), and
answers two questions exactly: the smallest budget any plan fits (a minimax path) and
the fewest steps of a plan under a given budget (a breadth-first search). It shares no
code with `solver.instance.build_instance`, the signature groups, `solver.plan.evaluate`,
the heuristics, the bounds or CP-SAT; `solver.validate` is the reference it is checked
against in the tests.

The model (the accounting of `solver/validate.py`):

- Components are `problem.modelled()`. A step changes any number of them at once, each
  by one allowed transition (or none):
  - vital components, and every added or removed one: old -> new;
  - a non-vital upgraded component: old, absent (never new yet), new, absent' (has been
    new), with old <-> absent, old -> new, absent -> new, new <-> absent'; both absent
    states are written `State.ABSENT` in a plan;
  - a non-vital unchanged component: present <-> absent; present is written `State.OLD`
    in the first and intermediate generations and `State.NEW` in the last.
- The nodes are START (every component old, the current system's glue), every state
  vector as an intermediate generation (the glue both systems share plus a virtual
  `mid` of bytes), and FINAL (every component at its target, the target's glue). A plan
  is a path START -> ... -> FINAL; its steps are its edges. Steps that change no state
  are left out (they never help); steps that change a state but no path (a closure that
  is pinned, say) are steps, as the planner counts them.
- The need of a step a -> b is |disk(a) | disk(b)| (the union) + virtual(a) + virtual(b) + the build
  scratch of the components that become new for the first time + the reserve.

Limits: the product over components of their number of states must be at most
`MAX_STATES` (4,096): 12 vital components, or 10 with two non-vital upgraded ones (4
states each). The paths' sizes must sum below 2**52 bytes (the pair unions are summed in
float64, exactly). One call takes well under a second at the limit.
"""

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from solver.components import Change
from solver.instance import Problem
from solver.plan import State

MAX_STATES = 4096
_EXACT = 1 << 52
_INF = np.iinfo(np.int64).max // 4
# Pairs of generations whose need is computed at once (memory: this times the columns).
_CHUNK = 65_536


@dataclass(frozen=True)
class _Kind:
    """A component's states: which hold its old or new closure, and the allowed moves."""

    name: str
    states: int
    start: int
    end: int
    has_old: tuple[bool, ...]
    has_new: tuple[bool, ...]
    moves: frozenset[tuple[int, int]]  # (from, to), staying excluded
    first_new: frozenset[tuple[int, int]]  # moves that bring the new version the first time
    written: tuple[State, ...]  # how an intermediate generation writes each state


PLAIN = _Kind(
    "plain",
    2,
    0,
    1,
    (True, False),
    (False, True),
    frozenset({(0, 1)}),
    frozenset({(0, 1)}),
    (State.OLD, State.NEW),
)
# 0 old, 1 absent (never new yet), 2 new, 3 absent (has been new).
DROPPABLE = _Kind(
    "droppable",
    4,
    0,
    2,
    (True, False, False, False),
    (False, False, True, False),
    frozenset({(0, 1), (1, 0), (0, 2), (1, 2), (2, 3), (3, 2)}),
    frozenset({(0, 2), (1, 2)}),
    (State.OLD, State.ABSENT, State.NEW, State.ABSENT),
)
# 0 present, 1 absent. Old and new closures are the same paths; present holds the old.
DROPPABLE_SAME = _Kind(
    "droppable-same",
    2,
    0,
    0,
    (True, False),
    (False, False),
    frozenset({(0, 1), (1, 0)}),
    frozenset(),
    (State.OLD, State.ABSENT),
)


def kind_of(vital: bool, change: Change) -> _Kind:
    if vital or change in (Change.ADD, Change.REMOVE):
        return PLAIN
    return DROPPABLE_SAME if change is Change.SAME else DROPPABLE


@dataclass
class Oracle:
    """Exact answers for one problem. Plans are lists of generations of `State` ints."""

    kinds: tuple[_Kind, ...]
    # Nodes 0..count-1 are intermediate generations (mixed radix, component 0 lowest);
    # `start` and `final` are the two ends.
    count: int
    start: int
    final: int
    states: npt.NDArray[np.int64]  # (nodes, components): each node's state digits
    src: npt.NDArray[np.int64]
    dst: npt.NDArray[np.int64]
    need: npt.NDArray[np.int64]
    min_budget: int
    one_step_need: int
    # For `needs`: the accounting behind every edge, for any pairs of nodes.
    _pair_need: Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.int64]] = (
        field(repr=False)
    )
    _cache: dict[int, tuple[int | None, list[tuple[int, ...]] | None]] = field(
        default_factory=dict, repr=False
    )
    _thresholds: npt.NDArray[np.int64] = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self._thresholds = np.unique(self.need)

    @property
    def edges(self) -> int:
        return len(self.src)

    def min_steps(self, budget: int) -> int | None:
        """Fewest steps of a plan whose every step needs at most `budget`; None if none."""
        return self._search(budget)[0]

    def plan(self, budget: int) -> list[tuple[int, ...]] | None:
        """A plan with `min_steps(budget)` steps that fits `budget`, or None."""
        return self._search(budget)[1]

    @property
    def min_budget_plan(self) -> list[tuple[int, ...]]:
        plan = self.plan(self.min_budget)
        assert plan is not None
        return plan

    def _search(self, budget: int) -> tuple[int | None, list[tuple[int, ...]] | None]:
        # Budgets between two consecutive edge needs allow the same edges.
        at = int(np.searchsorted(self._thresholds, budget, side="right"))
        if at == 0:
            return None, None
        key = int(self._thresholds[at - 1])
        if key not in self._cache:
            self._cache[key] = self._bfs(key)
        return self._cache[key]

    def _bfs(self, budget: int) -> tuple[int | None, list[tuple[int, ...]] | None]:
        fits = self.need <= budget
        src, dst = self.src[fits], self.dst[fits]
        nodes = self.count + 2
        parent = np.full(nodes, -2, dtype=np.int64)
        parent[self.start] = -1
        frontier = np.zeros(nodes, dtype=np.bool_)
        frontier[self.start] = True
        steps = 0
        while parent[self.final] == -2:
            step = frontier[src] & (parent[dst] == -2)
            if not step.any():
                return None, None
            s, d = src[step], dst[step]
            d, first = np.unique(d, return_index=True)
            parent[d] = s[first]
            frontier[:] = False
            frontier[d] = True
            steps += 1
        path = [self.final]
        while parent[path[-1]] >= 0:
            path.append(int(parent[path[-1]]))
        path.reverse()
        assert path[0] == self.start and len(path) == steps + 1
        return steps, [self.generation(n) for n in path]

    def generation(self, node: int) -> tuple[int, ...]:
        """How a plan writes a node."""
        if node == self.start:
            return (int(State.OLD),) * len(self.kinds)
        if node == self.final:
            return (int(State.NEW),) * len(self.kinds)
        return tuple(int(k.written[s]) for k, s in zip(self.kinds, self.states[node], strict=True))

    def nodes_of(self, generations: Sequence[Sequence[int]]) -> list[int]:
        """The nodes a plan visits; ValueError if it breaks a rule of the model."""
        if len(generations) < 2:
            raise ValueError("a plan has at least two generations")
        n = len(self.kinds)
        if tuple(generations[0]) != (State.OLD,) * n:
            raise ValueError("a plan starts from the current system")
        if tuple(generations[-1]) != (State.NEW,) * n:
            raise ValueError("a plan ends at the target")
        seen_new = [False] * n
        digits = [list(k.start for k in self.kinds)]
        for gen in generations[1:-1]:
            row = []
            for c, (kind, written) in enumerate(zip(self.kinds, gen, strict=True)):
                if kind is DROPPABLE_SAME:
                    s = 1 if written == State.ABSENT else 0
                elif written == State.NEW:
                    s = kind.written.index(State.NEW)
                elif written == State.OLD:
                    s = 0
                elif kind is DROPPABLE:
                    s = 3 if seen_new[c] else 1
                else:
                    raise ValueError(f"component {c} cannot be absent")
                seen_new[c] = seen_new[c] or written == State.NEW
                row.append(s)
            digits.append(row)
        digits.append([k.end for k in self.kinds])
        for a, b in itertools.pairwise(digits):
            for kind, x, y in zip(self.kinds, a, b, strict=True):
                if x != y and (x, y) not in kind.moves:
                    raise ValueError(f"{kind.name}: no move from state {x} to {y}")
        radix = _radix(self.kinds)
        inner = [sum(d * r for d, r in zip(row, radix, strict=True)) for row in digits[1:-1]]
        return [self.start, *inner, self.final]

    def needs(self, generations: Sequence[Sequence[int]]) -> list[int]:
        """The need of every step of any plan (self-steps included), by this accounting."""
        nodes = np.asarray(self.nodes_of(generations), dtype=np.int64)
        return [int(x) for x in self._pair_need(nodes[:-1], nodes[1:])]


def _radix(kinds: Sequence[_Kind]) -> list[int]:
    radix, r = [], 1
    for k in kinds:
        radix.append(r)
        r *= k.states
    return radix


def exhaustive(problem: Problem) -> Oracle:
    """Every generation, every step and its need, the minimax budget; see the module doc."""
    comps = problem.modelled()
    kinds = tuple(kind_of(c.vital, c.change) for c in comps)
    n = len(comps)
    count = int(np.prod([k.states for k in kinds], dtype=np.int64)) if n else 1
    if count > MAX_STATES:
        raise ValueError(f"{count} generations: the oracle enumerates at most {MAX_STATES}")

    # --- paths, as plain sets ---
    old_cl = [problem.old_closure(c) for c in comps]
    new_cl = [problem.new_closure(c) for c in comps]
    always = set(problem.pinned_paths)
    for c in problem.split.components:
        if c.change is Change.SAME and c.vital:
            always |= problem.old_closure(c)
    for c, o, nw in zip(comps, old_cl, new_cl, strict=True):
        if c.vital:
            always |= o & nw
    old_glue = set(problem.split.old_glue)
    new_glue = set(problem.split.new_glue)
    shared = old_glue & new_glue
    mid = max(
        sum(problem.size_of(p) for p in old_glue - always - shared),
        sum(problem.size_of(p) for p in new_glue - always - shared),
    )
    always_bytes = sum(problem.size_of(p) for p in always)
    universe: set[str] = old_glue | new_glue
    for o, nw in zip(old_cl, new_cl, strict=True):
        universe |= o | nw
    paths = sorted(universe - always)
    col = {p: i for i, p in enumerate(paths)}
    sizes = np.array([problem.size_of(p) for p in paths], dtype=np.int64)
    if always_bytes + int(sizes.sum()) + mid >= _EXACT:
        raise ValueError("sizes too large for exact float64 sums")

    def columns(ps: set[str]) -> npt.NDArray[np.bool_]:
        row = np.zeros(len(paths), dtype=np.bool_)
        row[[col[p] for p in ps if p in col]] = True
        return row

    m_old = np.array([columns(s) for s in old_cl], dtype=np.float64).reshape(n, len(paths))
    m_new = np.array([columns(s) for s in new_cl], dtype=np.float64).reshape(n, len(paths))

    # --- nodes: every state vector, then START and FINAL ---
    radix = _radix(kinds)
    idx = np.arange(count, dtype=np.int64)
    inner = np.zeros((count, n), dtype=np.int64)
    for c, (k, r) in enumerate(zip(kinds, radix, strict=True)):
        inner[:, c] = (idx // r) % k.states
    start_vec = np.array([[k.start for k in kinds]], dtype=np.int64).reshape(1, n)
    end_vec = np.array([[k.end for k in kinds]], dtype=np.int64).reshape(1, n)
    states = np.concatenate([inner, start_vec, end_vec])
    start, final = count, count + 1
    has_old = np.zeros(states.shape, dtype=np.float64)
    has_new = np.zeros(states.shape, dtype=np.float64)
    for c, k in enumerate(kinds):
        has_old[:, c] = np.asarray(k.has_old)[states[:, c]]
        has_new[:, c] = np.asarray(k.has_new)[states[:, c]]
    rows = (has_old @ m_old + has_new @ m_new) > 0
    rows[:count] |= columns(shared)
    rows[start] |= columns(old_glue)
    rows[final] |= columns(new_glue)
    virtual = np.full(count + 2, mid, dtype=np.int64)
    virtual[[start, final]] = 0

    # Paths present at exactly the same nodes are one column.
    if len(paths):
        uniq, inverse = np.unique(rows, axis=1, return_inverse=True)
        weights = np.bincount(inverse.ravel(), weights=sizes, minlength=uniq.shape[1])
    else:
        uniq, weights = np.zeros((count + 2, 0), dtype=np.bool_), np.zeros(0)
    present = uniq.astype(np.float64)
    weighted = present * weights
    stored = np.rint(weighted.sum(axis=1)).astype(np.int64)

    built = []
    for nw in new_cl:
        b = sum(
            problem.new[p].nar_size for p in nw if problem.new[p].estimated and p not in problem.old
        )
        built.append(int(b * problem.scratch_factor))
    first_new = []
    for k in kinds:
        table = np.zeros((k.states, k.states), dtype=np.bool_)
        for a, b in k.first_new:
            table[a, b] = True
        first_new.append(table)

    def pair_need(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        out = np.empty(len(a), dtype=np.int64)
        for lo in range(0, len(a), _CHUNK):
            sa, sb = a[lo : lo + _CHUNK], b[lo : lo + _CHUNK]
            inter = np.rint(np.einsum("ij,ij->i", weighted[sa], present[sb])).astype(np.int64)
            need = stored[sa] + stored[sb] - inter + always_bytes
            need += virtual[sa] + virtual[sb] + problem.reserve
            for c, k in enumerate(kinds):
                if not built[c]:
                    continue
                if k is DROPPABLE_SAME:
                    # Written new only in the last generation: its scratch is the last step's.
                    need += np.where(sb == final, built[c], 0)
                else:
                    need += first_new[c][states[sa, c], states[sb, c]] * built[c]
            out[lo : lo + _CHUNK] = need
        return out

    # --- edges: every pair of state vectors each component can move between ---
    src = idx.copy()
    dst = np.zeros(count, dtype=np.int64)
    for c, (k, r) in enumerate(zip(kinds, radix, strict=True)):
        here = states[src, c]
        parts_s, parts_d = [], []
        for t in range(k.states):
            ok = (here == t) | np.isin(here, [a for a, b in k.moves if b == t])
            parts_s.append(src[ok])
            parts_d.append(dst[ok] + t * r)
        src, dst = np.concatenate(parts_s), np.concatenate(parts_d)
    s0 = int(sum(k.start * r for k, r in zip(kinds, radix, strict=True)))
    e0 = int(sum(k.end * r for k, r in zip(kinds, radix, strict=True)))
    between = src != dst
    from_start = dst[src == s0]
    into_final = src[dst == e0]
    src = np.concatenate(
        [src[between], np.full(len(from_start), start), into_final, np.array([start])]
    )
    dst = np.concatenate(
        [dst[between], from_start, np.full(len(into_final), final), np.array([final])]
    )
    need = pair_need(src, dst)
    one_step_need = int(need[-1])

    # --- the smallest budget: a bottleneck (minimax) path, by relaxation ---
    order = np.argsort(dst, kind="stable")
    s_sorted, d_sorted, n_sorted = src[order], dst[order], need[order]
    heads = np.flatnonzero(np.r_[True, d_sorted[1:] != d_sorted[:-1]])
    targets = d_sorted[heads]
    dist = np.full(count + 2, _INF, dtype=np.int64)
    dist[start] = 0
    while True:
        through = np.maximum(dist[s_sorted], n_sorted)
        best = np.minimum.reduceat(through, heads)
        relaxed = dist.copy()
        relaxed[targets] = np.minimum(relaxed[targets], best)
        if np.array_equal(relaxed, dist):
            break
        dist = relaxed
    min_budget = int(dist[final])
    assert min_budget <= one_step_need

    return Oracle(
        kinds=kinds,
        count=count,
        start=start,
        final=final,
        states=states,
        src=src,
        dst=dst,
        need=need,
        min_budget=min_budget,
        one_step_need=one_step_need,
        _pair_need=pair_need,
    )
