"""The code passes the project's ruff configuration (pyproject.toml [tool.ruff]); [dev] installs ruff."""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
from helpers import ROOT


@pytest.mark.skipif(importlib.util.find_spec("ruff") is None, reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_check_passes():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
