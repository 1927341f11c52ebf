"""Loading a detection dataset: :func:`load_dataset` picks the reader for a path.

The dataset model (:class:`Sample`, :class:`DetectionDataset`, the ``cxcywh``/``xyxy``
conversions) lives in :mod:`yolov3_trt.data.samples` and is re-exported here. :func:`load_dataset`
reads the three layouts users bring:

- a YOLO-format folder: images under ``images/`` with labels mirrored under ``labels/``, or
  images and ``.txt`` labels side by side (:mod:`yolov3_trt.data.yolo_format`);
- a YOLO list file (``.txt``, one image path per line, relative to the list file);
- a COCO JSON (``.json``, :mod:`yolov3_trt.data.coco_format`).

Class names come from ``names`` (a list, or a names file), else a names file beside the data
(``classes.names``, else the only ``*.names``, else ``classes.txt``), else the COCO categories'
names, else ``class0 .. classK``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from yolov3_trt.data import coco_format, yolo_format
from yolov3_trt.data.samples import (
    COCO_MEDIUM_AREA,
    COCO_SMALL_AREA,
    IMAGE_SUFFIXES,
    DetectionDataset,
    Sample,
    cxcywh_to_xyxy,
    xyxy_to_cxcywh,
)
from yolov3_trt.errors import FileError
from yolov3_trt.names import load_names

logger = logging.getLogger(__name__)
__all__ = ["COCO_MEDIUM_AREA", "COCO_SMALL_AREA", "IMAGE_SUFFIXES", "DetectionDataset", "Sample", "cxcywh_to_xyxy",
           "find_names_file", "load_dataset", "xyxy_to_cxcywh"]


def find_names_file(folder: Path) -> Path | None:
    """The names file beside a dataset: ``classes.names``, else the only ``*.names``, else ``classes.txt``.

    Raises:
        FileError: several ``*.names`` files and none is ``classes.names`` (which one is meant?).
    """
    preferred = folder / "classes.names"
    if preferred.is_file():
        return preferred
    candidates = sorted(p for p in folder.glob("*.names") if p.is_file())
    if len(candidates) > 1:
        listed = ", ".join(p.name for p in candidates)
        raise FileError(folder, f"several names files ({listed}); pass the one to use (--names)")
    if candidates:
        return candidates[0]
    fallback = folder / "classes.txt"
    return fallback if fallback.is_file() else None


def _resolve_names(names: Sequence[str] | str | os.PathLike | None, beside: Path) -> tuple[list[str] | None, str]:
    """``(names or None, where they came from)`` for messages."""
    if isinstance(names, (str, os.PathLike)):
        return load_names(names), os.fspath(names)
    if names is not None:
        return [str(n) for n in names], "the given names"
    found = find_names_file(beside)
    if found is None:
        return None, ""
    logger.debug("class names from %s", found)
    return load_names(found), os.fspath(found)


def load_dataset(path: str | os.PathLike, names: Sequence[str] | str | os.PathLike | None = None) -> DetectionDataset:
    """Load a YOLO folder, a YOLO list file (``.txt``) or a COCO JSON (``.json``).

    Args:
        path: the dataset (see the module docstring for the layouts).
        names: class names, or a names file; default: found beside the data (module docstring).

    Raises:
        FileError: the path is missing or not one of the layouts.
        DatasetError: invalid content, naming the file and line (see the format modules).
    """
    path = Path(path)
    if not path.exists():
        raise FileError(path, "no such file or folder (expected a YOLO folder, an image list .txt or a COCO .json)")
    if path.is_dir():
        given, origin = _resolve_names(names, path)
        return yolo_format.load_yolo_folder(path, given, origin)
    suffix = path.suffix.lower()
    if suffix == ".json":
        given, origin = _resolve_names(names, path.parent)
        return coco_format.load_coco(path, given, origin)
    if suffix == ".txt":
        given, origin = _resolve_names(names, path.parent)
        return yolo_format.load_yolo_list(path, given, origin)
    raise FileError(path, "not a dataset: expected a YOLO folder, an image list .txt or a COCO .json")
