"""Running commands in the e2e tests, and measuring the store's filesystem."""

import os
import subprocess
from pathlib import Path

import pytest


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed:\n{result.stderr}")
    return result


def used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize
