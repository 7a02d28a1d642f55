"""The CP-SAT model of a staged upgrade (`upgrade.py`), its objectives and solving
(`solving.py`), and its builder and size measure (`size.py`)."""

from solver.model.size import build_model, model_work
from solver.model.solving import Objective, Solution, SolveStatus, default_workers
from solver.model.upgrade import UpgradeModel

__all__ = [
    "Objective",
    "Solution",
    "SolveStatus",
    "UpgradeModel",
    "build_model",
    "default_workers",
    "model_work",
]
