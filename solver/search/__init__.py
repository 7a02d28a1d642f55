"""The search for a plan: the pipeline of stages (`pipeline.py`, whose docstring lists
them in order), its state, tuning and result, and the heuristics, bounds and improvers
its stages call.

The pipeline (and with it CP-SAT) is imported when first asked for, so that a command's
`--help` and the readers of results load no solver.
"""

import importlib
from typing import TYPE_CHECKING, Any

from solver.search.result import NoPlan, Result, Status
from solver.search.tuning import PEAK_GAP

if TYPE_CHECKING:
    from solver.search.pipeline import STAGES, check, plan_checked, plan_upgrade, replayed

_PIPELINE = ("STAGES", "check", "plan_checked", "plan_upgrade", "replayed")


def __getattr__(name: str) -> Any:
    if name in _PIPELINE:
        return getattr(importlib.import_module("solver.search.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PEAK_GAP",
    "STAGES",
    "NoPlan",
    "Result",
    "Status",
    "check",
    "plan_checked",
    "plan_upgrade",
    "replayed",
]
