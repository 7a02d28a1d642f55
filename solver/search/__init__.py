"""The search for a plan: the pipeline of stages (`pipeline.py`, whose docstring lists
them in order), its state, tuning and result, and the heuristics, bounds and improvers
its stages call."""

from solver.search.pipeline import STAGES, check, plan_checked, plan_upgrade, replayed
from solver.search.result import NoPlan, Result, Status
from solver.search.tuning import PEAK_GAP

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
