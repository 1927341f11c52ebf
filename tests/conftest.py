"""pytest hooks. Shared helpers live in ``tests/helpers.py`` (``from helpers import ...``)."""
from __future__ import annotations

import pytest
from helpers import DARKNET


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not DARKNET.is_dir():
        skip = pytest.mark.skip(reason=f"official Darknet files not found at {DARKNET}")
        for item in items:
            if "darknet_files" in item.keywords:
                item.add_marker(skip)
