"""The deadline every part of the planner is given (solver/deadline.py)."""

import time

import pytest

from solver.deadline import Deadline


def test_a_wall_clock_deadline_narrows_to_what_comes_first():
    deadline = Deadline.after(10)
    assert not deadline.deterministic
    assert 9 < deadline.left() <= 10
    assert deadline.within(1).left() <= 1
    assert deadline.within(100).at == deadline.at
    assert 4 < deadline.share(0.5).left() <= 5
    assert 0.9 < deadline.within(1).solver_seconds() <= 1


def test_a_passed_deadline_still_gives_cp_sat_its_smallest_limit():
    deadline = Deadline(time.monotonic() - 1)
    assert deadline.passed()
    assert deadline.solver_seconds() == 0.05


@pytest.mark.parametrize("narrow", [lambda d: d.within(3), lambda d: d.share(0.3)])
def test_a_deterministic_deadline_gives_cp_sat_work_whatever_the_clock(narrow):
    """Its work does not shrink as wall time passes, only as it is narrowed."""
    deadline = Deadline.after(10, deterministic=True)
    assert deadline.deterministic and deadline.solver_seconds() == 10
    narrowed = narrow(deadline)
    assert narrowed.deterministic and narrowed.solver_seconds() == pytest.approx(3)
    late = Deadline(time.monotonic() - 1, work=2.0)
    assert late.passed() and late.solver_seconds() == 2.0
