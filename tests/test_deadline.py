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


def test_a_repeatable_plan_never_consults_the_clock(monkeypatch):
    """Every deadline a deterministic search asks is one of work: one wall-clock deadline
    (the order search once had its own second of wall time) makes the plan depend on the
    machine's load. A 1,000-path rebuild whose search goes through every stage."""
    from solver.search import plan_upgrade
    from tests.helpers import rebuild_of_1000_paths

    _, inst, budget = rebuild_of_1000_paths()
    wall_clock: list[str] = []
    for name in ("passed", "left"):
        asked = getattr(Deadline, name)

        def checked(self, asked=asked, name=name):
            if self.meter is None:
                wall_clock.append(name)
            return asked(self)

        monkeypatch.setattr(Deadline, name, checked)
    said: list[str] = []
    result = plan_upgrade(inst, budget, progress=said.append)
    assert "improving the order" in said
    assert result.repeatable
    assert wall_clock == []
