"""Shared fixtures: where the real Nix data samples live (shared/data/real beside the repo);
which Nix the real-store tests run (tests/e2e/versions.py), said in the session's header."""

import os
from pathlib import Path

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
# here explores new random examples each time (BUDGET_SOLVE_HYPOTHESIS=ci to reproduce
# CI's). `--hypothesis-show-statistics` and a failure's report give the seed to replay.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(
    os.environ.get("BUDGET_SOLVE_HYPOTHESIS")
    or ("ci" if os.environ.get("CI", "").lower() not in ("", "0", "false", "no") else "explore")
)


@pytest.fixture(autouse=True)
def _no_host_remembered() -> None:
    """What a host answered (its Nix version, its environment) is cached per host for a
    run; each test starts with nothing remembered, so that no test's answer depends on
    which test asked the same host first."""
    from adapters.nixstore import ssh, versions

    versions.forget_versions()
    ssh.forget_environments()


def pytest_report_header(config: pytest.Config) -> str:
    from tests.e2e import versions

    return versions.describe()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under CI, a Nix asked for (or one of the matrix) that is not set up ends the session
    before any test, with what to run."""
    from tests.e2e import versions

    missing = versions.selection().missing
    if missing and versions.under_ci():
        pytest.exit(f"error: {missing}; CI is set, and under CI every Nix must be there", 1)
