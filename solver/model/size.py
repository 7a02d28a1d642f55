"""The one way an upgrade model is made, and the one measure of how large it is."""

import logging
import time
from collections.abc import Sequence

from solver.instance import Instance
from solver.model.upgrade import UpgradeModel
from solver.plan import Generation

log = logging.getLogger(__name__)


def model_work(inst: Instance, slots: int) -> int:
    """(group, user) pairs times slots: what building a model of `slots` steps costs
    (25,000 paths all rebuilt: 250,000 pairs, 3 s for 7 slots)."""
    return (len(inst.old_users.users) + len(inst.new_users.users)) * slots


def build_model(
    inst: Instance,
    budget: int,
    slots: int,
    *,
    hint: Sequence[Generation] | None = None,
    overflow: int = 0,
) -> UpgradeModel:
    """A model of at most `slots` steps under `budget` (see UpgradeModel), hinted with a
    plan when one is given."""
    started = time.monotonic()
    model = UpgradeModel(inst, budget, slots, overflow=overflow)
    if hint is not None:
        model.hint(hint)
    log.debug(
        "model of %d slots (%d pair-slots) built in %.2fs",
        slots,
        model_work(inst, slots),
        time.monotonic() - started,
    )
    return model
