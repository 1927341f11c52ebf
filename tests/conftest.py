"""Shared test fixtures: paths to the official Darknet files beside the checkout."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DARKNET = SHARED / "darknet"
OFFICIAL_CFGS = sorted((DARKNET / "cfg").glob("*.cfg"))
IMAGES = sorted((DARKNET / "images").glob("*.jpg"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not DARKNET.is_dir():
        skip = pytest.mark.skip(reason=f"official Darknet files not found at {DARKNET}")
        for item in items:
            if "darknet_files" in item.keywords:
                item.add_marker(skip)
