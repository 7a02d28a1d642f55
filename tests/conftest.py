"""Shared fixtures: where the real Nix data samples live (shared/data/real beside the repo)."""

from pathlib import Path

import pytest

# The samples are not committed (no open licence for some); they sit in shared/ beside the repo.
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real Nix data samples not found at {REAL_DATA}")
    return REAL_DATA
