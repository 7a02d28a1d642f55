"""The deadline every part of the planner is given (solver/deadline.py)."""

import time

import pytest

from solver.deadline import WORK_PER_SECOND, Deadline, Meter


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


@pytest.mark.parametrize("narrow", [lambda d: d.within(12), lambda d: d.share(0.3)])
def test_a_deterministic_deadline_gives_cp_sat_work_whatever_the_clock(narrow):
    """Its work does not shrink as wall time passes, only as it is narrowed or spent."""
    deadline = Deadline.of_work(10)
    assert deadline.deterministic and deadline.solver_seconds() == 10
    narrowed = narrow(deadline)
    assert narrowed.deterministic and narrowed.solver_seconds() == pytest.approx(3)
    # Work spent on a narrowed deadline is spent on the one it came from.
    narrowed.spend(2)
    assert deadline.solver_seconds() == pytest.approx(8)
    assert narrowed.solver_seconds() == pytest.approx(1) and not narrowed.passed()
    narrowed.spend(1)
    assert narrowed.passed() and not deadline.passed()
    assert not deadline.meter.capped


def test_seconds_of_a_deterministic_deadline_are_work():
    deadline = Deadline.after(8, deterministic=True)
    assert deadline.solver_seconds() == pytest.approx(8 * WORK_PER_SECOND)
    assert deadline.left() == pytest.approx(8)
    assert deadline.within(4).solver_seconds() == pytest.approx(4 * WORK_PER_SECOND)


def test_the_clock_caps_a_deterministic_deadline_and_says_so():
    """Past its cap, a deterministic deadline has passed, with work left, and its meter
    records that the clock, not the work, stopped it: the result is then not repeatable."""
    late = Deadline(time.monotonic() - 1, work=2.0, meter=Meter())
    assert not late.meter.capped
    assert late.passed() and late.left() == 0
    assert late.meter.capped
    # Narrowing moves the work, never the cap.
    assert late.within(100).at == late.at and late.share(0.5).at == late.at
