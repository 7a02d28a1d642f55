"""Figures: the format the name asks for, the errors of --plot, the staircase of steps
against the budget (solver/whatif/staircase.py) and how the figures draw it."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.patches import StepPatch

from adapters.cli import main, plots
from adapters.studies import scenario as sc
from solver.instance import build_instance
from solver.plan import one_step
from solver.search import Status
from solver.units import Rounding
from solver.validate import validate
from solver.whatif.staircase import staircase
from tests.test_scenario import assert_matplotlib_png

ROOT = Path(__file__).resolve().parents[1]
STORY = ROOT / "scenarios" / "user-story.yaml"
FLEET = ROOT / "scenarios" / "fleets" / "vps-fleet.yaml"
GiB = 1 << 30


@pytest.fixture(scope="module")
def story():
    """The user's story: four budgets with a plan (1, 2 and 4 steps), one without."""
    spec = sc.load(STORY)
    spec.time_limit = 2
    outcome = sc.run(spec)
    return spec, outcome, plots.scenario_stairs(outcome.problem, outcome.results)


SMALL_FLEET = """\
name: three 2 GB hosts
update: [{bump: [openssl, sqlite], grow: 3%}]
overhead: 100M
profiles:
  small: {generate: {paths: 300, components: 20, seed: 11}}
hosts:
  - {name: a, disk: 1G, profile: small}
  - {name: b, disk: 1G, profile: small}
  - {name: c, disk: 2G, profile: small}
"""


@pytest.fixture(scope="module")
def fleet_report(tmp_path_factory):
    """A fleet small enough to plan in a moment (the shipped one takes seconds)."""
    from adapters.studies import fleet as fl

    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(SMALL_FLEET)
    return fl.run(fl.load(path), workers=1)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


# -- files ---------------------------------------------------------------------------------


def assert_svg(path: Path) -> None:
    root = ET.fromstring(path.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def assert_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


FORMATS = {"png": assert_matplotlib_png, "svg": assert_svg, "pdf": assert_pdf}


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf", "PDF"])
def test_the_suffix_names_the_format(tmp_path, capsys, suffix):
    out = tmp_path / f"story.{suffix}"
    code, stdout, _ = run(
        capsys, "scenario", str(STORY), "--plot", str(out), "--time-limit", "2", "--quiet"
    )
    assert code == 0 and f"figure: {out}" in stdout
    FORMATS[suffix.lower()](out)
    # Written whole, beside its place (adapters/files.py): no temporary file is left.
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


def test_json_and_a_figure(tmp_path, capsys):
    """With --json the output is the JSON alone; the figure is written all the same."""
    out = tmp_path / "story.png"
    code, stdout, _ = run(
        capsys, "scenario", str(STORY), "--json", "--plot", str(out), "--time-limit", "2", "-q"
    )
    assert code == 0 and json.loads(stdout)["results"]
    assert_matplotlib_png(out)


def test_a_fleet_figure_in_svg(fleet_report, tmp_path):
    out = tmp_path / "fleet.svg"
    plots.save(plots.fleet_figure(fleet_report), out)
    assert_svg(out)


def test_no_date_in_svg_and_pdf(story, tmp_path):
    """The same figure is the same file: matplotlib writes no date into it."""
    spec, outcome, stairs = story
    for fmt in ("svg", "pdf"):
        first, second = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
        for path in (first, second):
            plots.save(plots.scenario_figure(spec.name, outcome.results, stairs), path)
        assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("x.jpg", "unknown figure format '.jpg'"),
        ("x", "no format"),
        ("x.png.gz", "unknown figure format '.gz'"),
    ],
)
def test_an_unknown_suffix_is_bad_input_before_any_work(tmp_path, capsys, monkeypatch, name, said):
    # The commands import what plans when they run.
    from adapters.studies.fleet import running

    monkeypatch.setattr(sc, "run", lambda *_, **__: pytest.fail("planned"))
    monkeypatch.setattr(running, "run", lambda *_, **__: pytest.fail("planned"))
    for command, file in (("scenario", STORY), ("fleet", FLEET)):
        code, _, err = run(capsys, command, str(file), "--plot", str(tmp_path / name), "-q")
        assert code == 2
        assert err.startswith(f"error: --plot {tmp_path / name}: {said}")
        assert ".png, .svg or .pdf" in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())


BLOCKED = "import sys\nsys.modules['matplotlib'] = None\nfrom adapters.cli import main\n"


def without_matplotlib(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED + "main(sys.argv[1:])", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_without_matplotlib_plot_names_the_extra(tmp_path):
    for command, file in (("scenario", STORY), ("fleet", FLEET)):
        done = without_matplotlib(command, str(file), "--plot", str(tmp_path / "x.png"), "-q")
        assert done.returncode == 2, done.stderr
        assert done.stderr == "error: --plot needs matplotlib: pip install 'budget-solve[plots]'\n"
    assert not list(tmp_path.iterdir())


def test_without_matplotlib_a_scenario_runs_without_plot():
    """studies.py loads the plots only for --plot."""
    done = without_matplotlib("scenario", str(STORY), "--json", "--time-limit", "1", "-q")
    assert done.returncode == 0, done.stderr
    assert '"results"' in done.stdout


# -- units -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "rounding", "text"),
    [
        (GiB, Rounding.NEAREST, "1.0 GiB"),
        (3.2 * GiB, Rounding.NEAREST, "3.2 GiB"),
        (10**10, Rounding.NEAREST, "9.31 GiB"),
        (512 << 20, Rounding.NEAREST, "0.5 GiB"),
        (3.201 * GiB, Rounding.UP, "3.21 GiB"),
        (3.209 * GiB, Rounding.DOWN, "3.2 GiB"),
        (3 * GiB, Rounding.UP, "3.0 GiB"),
    ],
)
def test_sizes_are_in_gib(n, rounding, text):
    assert plots.gib(n, rounding) == text


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("on a 10 GB VPS", "on a 10 GB VPS (10 GB = 9.31 GiB)"),
        ("2.5GB and 500 MB", "2.5GB and 500 MB (2.5GB = 2.33 GiB; 500 MB = 0.47 GiB)"),
        ("a 10 GiB disk", "a 10 GiB disk"),
        ("glibc mass rebuild", "glibc mass rebuild"),
    ],
)
def test_titles_say_their_sizes_in_gib(name, title):
    assert plots.titled(name) == title


# -- the staircase ---------------------------------------------------------------------------


def test_stairs_fall_to_one_step_at_the_one_step_need(story):
    _, outcome, stairs = story
    one = one_step(build_instance(outcome.problem)).peak_bytes
    assert [s.steps for s in stairs.stairs][:2] == [1, 2]
    assert stairs.stairs[0].budget == one == outcome.results[0].one_step_peak
    assert stairs.steps_at(one) == 1 and stairs.steps_at(one - 1) == 2


def test_stairs_are_monotone_and_each_is_a_validated_plan(story):
    _, outcome, stairs = story
    budgets = [s.budget for s in stairs.stairs]
    steps = [s.steps for s in stairs.stairs]
    assert budgets == sorted(budgets, reverse=True) and len(set(budgets)) == len(budgets)
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    for stair in stairs.stairs:
        checked = validate(outcome.problem, stair.plan, stair.budget)
        assert checked.peak == stair.budget and len(stair.plan) <= stair.steps
        assert stair.lower <= stair.budget
        # Where the answer changes: a byte less, the stair's count does not fit.
        assert stairs.steps_at(stair.budget) == stair.steps
        assert (stairs.steps_at(stair.budget - 1) or 99) > stair.steps
    assert stairs.complete and stairs.floor <= stairs.least


def test_stairs_agree_with_the_planner_at_the_scenarios_budgets(story):
    _, outcome, stairs = story
    for r in outcome.results:
        if r.plan is None:
            assert r.status is Status.INFEASIBLE
            assert stairs.steps_at(r.budget) is None and stairs.fewest_at(r.budget) is None
        else:
            # Every result of the story is optimal: the stairs say the same.
            assert r.status is Status.OPTIMAL
            assert stairs.steps_at(r.budget) == stairs.fewest_at(r.budget) == len(r.plan)


def test_unproven_stairs_are_bracketed(story):
    """Without CP-SAT and the planner's results, the bounds stay apart somewhere, and
    the fewest steps not ruled out are never more than the best plans take."""
    _, outcome, _ = story
    inst = build_instance(outcome.problem)
    stairs = staircase(inst, work=0)
    assert not all(s.proven for s in stairs.stairs)
    for budget in range(stairs.floor - GiB // 4, stairs.stairs[0].budget + GiB // 4, 1 << 24):
        found, fewest = stairs.steps_at(budget), stairs.fewest_at(budget)
        if found is not None:
            assert fewest is not None and fewest <= found
        if budget < stairs.floor:
            assert fewest is None


def test_stairs_stop_at_the_budget_asked_for(story):
    _, outcome, full = story
    inst = build_instance(outcome.problem)
    two = full.stairs[1].budget
    stairs = staircase(inst, down_to=two, work=0)
    assert [s.steps for s in stairs.stairs] == [1, 2] and not stairs.complete


# -- what the figures draw -------------------------------------------------------------------


def test_the_scenario_figure_draws_the_stairs_and_the_plans(story):
    spec, outcome, stairs = story
    fig = plots.scenario_figure(spec.name, outcome.results, stairs)
    use, steps = fig.axes
    # Left: every budget's line, and every plan's peaks.
    heights = {round(y * GiB) for line in use.lines for y in line.get_ydata()}
    for r in outcome.results:
        assert any(abs(r.budget - h) <= 1 for h in heights)
        for s in r.plan.steps if r.plan else ():
            assert any(abs(s.peak_bytes - h) <= 1 for h in heights)
    # Right: the stairs change exactly at their budgets.
    (patch,) = [p for p in steps.patches if isinstance(p, StepPatch)]
    values, edges, _ = patch.get_data()
    assert list(values) == [s.steps for s in reversed(stairs.stairs)]
    assert [round(e * GiB) for e in edges[:-1]] == [s.budget for s in reversed(stairs.stairs)]
    assert round(edges[-2] * GiB) == stairs.stairs[0].budget == outcome.results[0].one_step_peak
    # No plan fits 8G: drawn at the top, in a region of its own, never at 0 steps.
    plotted = [line for line in steps.lines if line.get_transform() == steps.transData]
    assert all(y >= 1 for line in plotted for y in line.get_ydata())
    failed = [line for line in steps.lines if line.get_label().startswith("no plan fits")]
    assert failed and all(line.get_ydata()[0] > 0.5 for line in failed)
    assert any("no plan fits" in str(p.get_label()) for p in steps.patches)
    assert "(10 GB = 9.31 GiB)" in fig.get_suptitle()


def test_legends_hide_nothing(story, fleet_report):
    """One legend entry per budget, each with something drawn, and every legend outside
    the axes it explains."""
    spec, outcome, stairs = story
    scenario = plots.scenario_figure(spec.name, outcome.results, stairs)
    fleet = plots.fleet_figure(fleet_report)
    for fig in (scenario, fleet):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
            assert box.y1 <= area.y0 or box.x0 >= area.x1, ax.get_title()
    use = scenario.axes[0]
    entries = use.get_legend().get_texts()
    assert len(entries) == len(outcome.results)
    for handle in use.get_legend().legend_handles:
        assert handle.get_linestyle() != "None" or handle.get_marker() not in ("None", "")
