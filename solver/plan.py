"""Plans: a sequence of generations (one state per component) and the disk need of each step."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, NotRequired, TypedDict

from solver.components import Change
from solver.errors import InputError, some_named

if TYPE_CHECKING:
    # Imported when a plan is evaluated: what only reads plans and results (solver.search's,
    # a command's --help) loads no numpy.
    import numpy as np
    import numpy.typing as npt

    from solver.instance import Instance


class State(IntEnum):
    OLD = 0
    NEW = 1
    ABSENT = 2


Generation = tuple[int, ...]


@dataclass(frozen=True)
class Step:
    """One intermediate generation built, the previous one deleted, garbage collected."""

    index: int
    upgrade: tuple[str, ...]
    add: tuple[str, ...]
    remove: tuple[str, ...]
    drop: tuple[str, ...]
    restore: tuple[str, ...]
    peak_bytes: int
    store_bytes_after: int
    store_bytes_before: int = 0
    # Version changes of what the step upgrades, adds or removes: name -> "old → new".
    versions: tuple[tuple[str, str], ...] = ()

    @property
    def store_delta(self) -> int:
        return self.store_bytes_after - self.store_bytes_before

    def by_kind(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(verb, names) for each kind of change, in the order the JSON lists them."""
        return (
            ("upgrade", self.upgrade),
            ("add", self.add),
            ("remove", self.remove),
            ("drop", self.drop),
            ("restore", self.restore),
        )

    @property
    def changes(self) -> int:
        return sum(len(names) for _, names in self.by_kind())

    def summary(self, width: int = 72) -> str:
        """What the step changes in at most about `width` characters: every name when
        they fit, else the count of each kind and as many names as fit."""
        kinds = [(verb, names) for verb, names in self.by_kind() if names]
        if not kinds:
            return "rebuild the glue"
        versions = dict(self.versions)

        def shown(name: str) -> str:
            return f"{name} {versions[name]}" if name in versions else name

        text = "; ".join(f"{verb} {', '.join(map(shown, names))}" for verb, names in kinds)
        if len(text) <= width:
            return text
        counts = ", ".join(f"{verb} {len(names)}" for verb, names in kinds) + ": "
        room = max(10, width - len(counts) - 2)
        listed = ", ".join(name for _, names in kinds for name in names)
        return counts + (listed if len(listed) <= room else listed[: room - 1] + "…")

    def to_json(self) -> "StepDocument":
        return {
            "index": self.index,
            "upgrade": list(self.upgrade),
            "add": list(self.add),
            "remove": list(self.remove),
            "drop": list(self.drop),
            "restore": list(self.restore),
            "peak_bytes": self.peak_bytes,
            "store_bytes_after": self.store_bytes_after,
            "store_delta_bytes": self.store_delta,
            "versions": dict(self.versions),
        }


class PackageDocument(TypedDict):
    """A package of a diff (solver/diff.py): its name and versions on each side."""

    name: str
    old: list[str]
    new: list[str]


class DiffDocument(TypedDict):
    """A diff in JSON: the packages of each kind by name, and the size change."""

    upgraded: list[PackageDocument]
    downgraded: list[PackageDocument]
    added: list[PackageDocument]
    removed: list[PackageDocument]
    changed: list[PackageDocument]
    size_change_bytes: int
    paths_added: int
    paths_removed: int


class StepDocument(TypedDict):
    """One step in the `--json` contract (docs/DESIGN.md, README "Usage")."""

    index: int
    upgrade: list[str]
    add: list[str]
    remove: list[str]
    drop: list[str]
    restore: list[str]
    peak_bytes: int
    store_bytes_after: int
    store_delta_bytes: int
    versions: dict[str, str]
    # `plan --json` and `apply --json`: every package the step changes (solver/diff.py).
    diff: NotRequired[DiffDocument]


class PlanDocument(TypedDict):
    """The object `--json` prints (docs/DESIGN.md, README "Usage"), as
    `solver.search.Result.to_json` builds it: `status` is a `Status` value, and `steps`
    is empty when no plan was found."""

    status: str
    budget_bytes: int
    peak_bytes: int
    lower_bound_steps: int
    min_feasible_budget_bytes: int | None
    min_budget_lower_bound_bytes: int | None
    steps: list[StepDocument]
    repeatable: bool


@dataclass(frozen=True)
class Plan:
    generations: tuple[Generation, ...]
    steps: tuple[Step, ...]

    @property
    def peak_bytes(self) -> int:
        return max((s.peak_bytes for s in self.steps), default=0)

    @property
    def absent_steps(self) -> int:
        """Generations in which some component is absent, summed over components."""
        return sum(st == State.ABSENT for g in self.generations for st in g)

    def __len__(self) -> int:
        return len(self.steps)


# The general presence computation gathers every (group, user) pair for a block of
# generations at a time: this many pairs per block bound its memory (32 MiB).
PAIRS_PER_BLOCK = 2**25

# A component's states in the only order a monotone plan visits them: old, absent, new.
_RANK = (0, 2, 1)  # indexed by State


def presence_matrix(inst: "Instance", generations: Sequence[Generation]) -> "npt.NDArray[np.bool_]":
    """present[i, g]: is group g on disk in generation i."""
    import numpy as np

    states = np.asarray(generations, dtype=np.int8).reshape(len(generations), inst.size)
    gaps = absence_gaps(inst, states)
    if gaps is not None:
        lo, hi = gaps
        at = np.arange(len(states))[:, None]
        absent: npt.NDArray[np.bool_] = (lo <= at) & (at < hi)
        return ~absent
    # Any plan: a group is present where one of its old users is old or one of its new
    # users new; the dummy user that ends every group's run is neither.
    padded = np.pad(states, ((0, 0), (0, 1)), constant_values=-1)
    old, new = inst.old_users, inst.new_users
    rows = max(1, PAIRS_PER_BLOCK // max(1, len(old.users) + len(new.users)))
    present = np.empty((len(states), len(inst.groups)), dtype=np.bool_)
    for top in range(0, len(states), rows):
        block = padded[top : top + rows]
        present[top : top + rows] = np.logical_or.reduceat(
            block[:, old.users] == State.OLD, old.starts, axis=1
        ) | np.logical_or.reduceat(block[:, new.users] == State.NEW, new.starts, axis=1)
    return present


def absence_gaps(
    inst: "Instance", states: "npt.NDArray[np.int8]"
) -> "tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None":
    """Where each group is off the disk, when every component of the plan goes only
    forward (old, maybe absent, new): generations lo[g] <= i < hi[g], empty when lo >= hi.
    None for any other plan.

    Forward, a group is on disk until its last old user leaves its old state and again
    from when its first new user enters its new one: that leaves one gap at most.
    """
    import numpy as np

    count = len(states)
    if inst.size == 0 or np.any(np.diff(np.array(_RANK, dtype=np.int8)[states], axis=0) < 0):
        return None
    not_old = states != State.OLD
    is_new = states == State.NEW
    # leaves[c]: the first generation c is not old in; enters[c]: the first it is new in
    # (count: never). The dummy user leaves at once and never enters.
    leaves = np.append(np.where(not_old.any(axis=0), not_old.argmax(axis=0), count), 0)
    enters = np.append(np.where(is_new.any(axis=0), is_new.argmax(axis=0), count), count)
    old, new = inst.old_users, inst.new_users
    lo = np.maximum.reduceat(leaves[old.users], old.starts)
    hi = np.minimum.reduceat(enters[new.users], new.starts)
    return lo, hi


def group_sizes(inst: "Instance") -> "npt.NDArray[np.int64]":
    import numpy as np

    return np.fromiter((g.size for g in inst.groups), dtype=np.int64, count=len(inst.groups))


def glue_of(inst: "Instance", i: int, last: int) -> int:
    """Glue bytes of generation i in a plan whose final generation is `last`."""
    if i == 0:
        return inst.old_glue
    if i == last:
        return inst.new_glue
    return inst.mid_glue


def first_new(generations: Sequence[Generation], c: int) -> int | None:
    for i, g in enumerate(generations):
        if g[c] == State.NEW:
            return i
    return None


def scratch_by_step(inst: "Instance", generations: Sequence[Generation]) -> list[int]:
    """Build scratch of each step: components that become new for the first time."""
    out = [0] * len(generations)
    for c, bytes_ in enumerate(inst.scratch):
        if bytes_:
            i = first_new(generations, c)
            if i is not None and i > 0:
                out[i] += bytes_
    return out


def evaluate(inst: "Instance", generations: Sequence[Generation]) -> Plan:
    """Exact disk need of every step of a plan (the planner's own accounting)."""
    import numpy as np

    gens = [tuple(g) for g in generations]
    present = presence_matrix(inst, gens)
    sizes = group_sizes(inst)
    stored = present.astype(np.int64) @ sizes
    scratch = scratch_by_step(inst, gens)
    last = len(gens) - 1
    steps = []
    for i in range(1, len(gens)):
        union = int((present[i - 1] | present[i]).astype(np.int64) @ sizes)
        glue = glue_of(inst, i - 1, last) + glue_of(inst, i, last)
        peak = inst.always + union + glue + scratch[i] + inst.reserve
        after = inst.always + int(stored[i]) + glue_of(inst, i, last)
        before = inst.always + int(stored[i - 1]) + glue_of(inst, i - 1, last)
        steps.append(_describe(inst, i, gens[i - 1], gens[i], peak, after, before))
    return Plan(tuple(gens), tuple(steps))


def _describe(
    inst: "Instance",
    index: int,
    before: Generation,
    after: Generation,
    peak: int,
    stored: int,
    stored_before: int,
) -> Step:
    kinds: dict[str, list[str]] = {k: [] for k in ("upgrade", "add", "remove", "drop", "restore")}
    versions: list[tuple[str, str]] = []
    for c, (a, b) in enumerate(zip(before, after, strict=True)):
        if a == b or (inst.changes[c] is Change.SAME and State.ABSENT not in (a, b)):
            continue
        name = inst.names[c]
        if b == State.NEW and c < len(inst.versions) and inst.versions[c]:
            versions.append((name, inst.versions[c]))
        if b == State.ABSENT:
            kinds["drop"].append(name)
        elif a == State.ABSENT:
            kinds["restore"].append(name)
        elif inst.changes[c] is Change.ADD:
            kinds["add"].append(name)
        elif inst.changes[c] is Change.REMOVE:
            kinds["remove"].append(name)
        else:
            kinds["upgrade"].append(name)
    return Step(
        index,
        upgrade=tuple(kinds["upgrade"]),
        add=tuple(kinds["add"]),
        remove=tuple(kinds["remove"]),
        drop=tuple(kinds["drop"]),
        restore=tuple(kinds["restore"]),
        peak_bytes=peak,
        store_bytes_after=stored,
        store_bytes_before=stored_before,
        versions=tuple(versions),
    )


def one_step(inst: "Instance") -> Plan:
    """The plain upgrade: everything at once."""
    return evaluate(inst, [initial(inst), final(inst)])


def initial(inst: "Instance") -> Generation:
    return (State.OLD,) * inst.size


def final(inst: "Instance") -> Generation:
    return (State.NEW,) * inst.size


def _same_disk(inst: "Instance", a: Generation, b: Generation) -> bool:
    """Two generations that put the same paths on disk (unchanged components: old == new)."""
    for c, (x, y) in enumerate(zip(a, b, strict=True)):
        if x != y and not (inst.changes[c] is Change.SAME and State.ABSENT not in (x, y)):
            return False
    return True


def canonical(inst: "Instance", generations: Sequence[Generation]) -> list[Generation]:
    """Drop null steps; the plan starts at the current system and ends at the target."""
    out: list[Generation] = [initial(inst)]
    for gen in generations[1:]:
        if not _same_disk(inst, out[-1], gen):
            out.append(tuple(gen))
    # Only the glue may change (the same packages, another configuration): that is still
    # one step, not "nothing to do".
    if not _same_disk(inst, out[-1], final(inst)) or (len(out) == 1 and inst.changed):
        out.append(final(inst))
    elif len(out) > 1:
        out[-1] = final(inst)
    return out


# The kinds of change a step lists, in the order StepDocument holds them.
STEP_KINDS = ("upgrade", "add", "remove", "drop", "restore")


def replay(inst: "Instance", steps: Sequence[StepDocument]) -> Plan:
    """The plan whose steps are `steps` (a plan's `--json` document, read back), on
    `inst`: the same plan, or InputError saying where `steps` and `inst` disagree.

    Each step's components become new (upgrade, add, remove), absent (drop) or present
    again (restore); the last generation is the target. The plan is then described again
    and must list in each step what `steps` lists: a component of the same name that
    `inst` decides about otherwise makes the steps another plan.
    """
    if not steps:
        if inst.changed:
            raise InputError("the plan has no step, and this upgrade changes something")
        return evaluate(inst, [initial(inst)])
    state = list(initial(inst))
    gens: list[Generation] = [tuple(state)]
    for step in steps:
        for kind in STEP_KINDS:
            for name in step[kind]:  # type: ignore[literal-required]
                c = inst.index(name)
                if kind == "drop":
                    state[c] = State.ABSENT
                elif kind == "restore" and inst.changes[c] is Change.SAME:
                    state[c] = State.OLD
                else:
                    state[c] = State.NEW
        gens.append(tuple(state))
    left = [
        inst.names[c]
        for c, st in enumerate(state)
        if st is not State.NEW and inst.changes[c] is not Change.SAME
    ]
    if left:
        raise InputError(f"the plan never upgrades {some_named(left)}, which this upgrade changes")
    gens[-1] = final(inst)
    plan = evaluate(inst, gens)
    if len(plan.steps) != len(steps):
        raise InputError(f"the plan's {len(steps)} steps are {len(plan.steps)} here")
    for i, (step, replayed) in enumerate(zip(steps, plan.steps, strict=True), 1):
        doc = replayed.to_json()
        for kind in STEP_KINDS:
            mine, theirs = set(doc[kind]), set(step[kind])  # type: ignore[literal-required]
            if mine != theirs:
                names = some_named(sorted(mine ^ theirs))
                raise InputError(f"step {i} of the plan does not {kind} here what it says: {names}")
    return plan
