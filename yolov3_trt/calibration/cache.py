"""Calibrated models kept by what determines them, so repeated builds skip calibration.

The key is a SHA-256 over: the source model's bytes, the calibration images' bytes (in the
order used), the method, the input size, the target (``tensorrt`` or ``cpu``) and a settings
string naming the quantizer and its version. Any change in these gives another key, so a stale
entry is never used; an unchanged request copies the stored model instead of calibrating.
Entries are ``<key>.onnx`` plus ``<key>.json`` (what the key was made of, for people), both
written atomically; a folder of entries can be deleted at any time.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..fileio import atomic_path, atomic_write_json, file_sha256

logger = logging.getLogger(__name__)


def calibration_key(model: str | os.PathLike, images: Sequence[str | os.PathLike], *, method: str,
                    size: tuple[int, int], target: str, settings: str = "") -> str:
    """Hex SHA-256 naming one calibration: model bytes + image bytes + method + size + target + settings."""
    digest = hashlib.sha256()
    header = {"model": file_sha256(model), "method": method, "size": list(size), "target": target,
              "settings": settings, "images": len(images)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for image in images:
        digest.update(file_sha256(image).encode())
    return digest.hexdigest()


class CalibrationCache:
    """A folder of calibrated models keyed by :func:`calibration_key`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.onnx"

    def lookup(self, key: str) -> Path | None:
        """The stored model for ``key``, or None (a miss)."""
        path = self.path(key)
        return path if path.is_file() else None

    def fetch(self, key: str, dst: str | os.PathLike) -> bool:
        """Copy the entry for ``key`` to ``dst`` atomically; False on a miss."""
        found = self.lookup(key)
        if found is None:
            logger.info("calibration cache miss: %s", key[:16])
            return False
        with atomic_path(dst) as tmp:
            shutil.copyfile(found, tmp)
        logger.info("calibration cache hit: %s (%s)", key[:16], found)
        return True

    def store(self, key: str, model: str | os.PathLike, info: dict[str, Any]) -> Path:
        """Keep a copy of ``model`` under ``key``, with ``info`` beside it as JSON."""
        path = self.path(key)
        with atomic_path(path) as tmp:
            shutil.copyfile(model, tmp)
        atomic_write_json(path.with_suffix(".json"), {"key": key, **info})
        return path
