"""Shared fixtures: where the real Nix data samples live (shared/data/real beside the repo);
which Nix the real-store tests run (tests/e2e/versions.py), said in the session's header."""

import os
import random
from pathlib import Path
from typing import Any

import hypothesis.core
import pytest
from hypothesis import settings

# The samples are not committed (no open licence for some); they sit in shared/ beside the repo.
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real Nix data samples not found at {REAL_DATA}")
    return REAL_DATA


# Property tests: CI runs one fixed derivation of the examples (derandomize: the same
# examples on every run and machine), so that it goes red for a real reason only; a run
# here explores new random examples each time, from one seed per session that the
# session's header prints, so that a failure is replayed with --hypothesis-seed=N
# (BUDGET_SOLVE_HYPOTHESIS=ci reproduces CI's examples).
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
PROFILE = os.environ.get("BUDGET_SOLVE_HYPOTHESIS") or (
    "ci" if os.environ.get("CI", "").lower() not in ("", "0", "false", "no") else "explore"
)
settings.load_profile(PROFILE)


@pytest.fixture(autouse=True)
def _no_host_remembered() -> None:
    """What a host answered (its Nix version, its environment) is cached per host for a
    run; each test starts with nothing remembered, so that no test's answer depends on
    which test asked the same host first."""
    from adapters.nixstore import ssh, versions

    versions.forget_versions()
    ssh.forget_environments()


def _hypothesis_seed(config: pytest.Config) -> int | None:
    """The seed every property test of this session starts from: the one asked for, the
    controller's (on an xdist worker), or a new one; None when derandomized."""
    asked = config.getoption("--hypothesis-seed")
    if asked is not None:
        return int(asked)
    if settings.default.derandomize:
        return None
    worker = getattr(config, "workerinput", None)
    if worker is not None:
        return int(worker["hypothesis_seed"])
    return random.SystemRandom().randrange(1 << 32)


def pytest_configure(config: pytest.Config) -> None:
    seed = _hypothesis_seed(config)
    config.stash[SEED] = seed
    if seed is not None:
        hypothesis.core.global_force_seed = seed


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: every worker explores from the seed the header printed."""
    node.workerinput["hypothesis_seed"] = node.config.stash[SEED]


SEED = pytest.StashKey[int | None]()


def pytest_report_header(config: pytest.Config) -> list[str]:
    from tests.e2e import versions

    seed = config.stash[SEED]
    examples = (
        f"random, seed {seed} (replay: --hypothesis-seed={seed})"
        if seed is not None
        else "derandomized (the same on every run)"
    )
    return [versions.describe(), f"hypothesis: profile {PROFILE!r}, examples {examples}"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI, a Nix asked for (or one of the matrix) that is not set up ends the session
    before any test, with what to run."""
    from tests.e2e import versions

    missing = versions.selection().missing
    if missing and versions.under_ci():
        pytest.exit(f"error: {missing}; CI is set, and under CI every Nix must be there", 1)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """After a failure, the seed again (the header is not shown with -q)."""
    seed = config.stash[SEED]
    if seed is not None and terminalreporter.stats.get("failed"):
        terminalreporter.write_line(f"hypothesis seed {seed}: replay with --hypothesis-seed={seed}")
