"""The detection dataset model that training, evaluation and calibration code against.

A :class:`DetectionDataset` is a list of :class:`Sample` (an image file, its boxes as normalised
``cx, cy, w, h`` and int64 class ids) plus the class names. :func:`load_dataset` reads the three
layouts users bring:

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from yolov3_trt.errors import FileError
from yolov3_trt.names import load_names

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
COCO_SMALL_AREA = 32 ** 2  # COCO's size ranges: small < 32², medium < 96², large the rest
COCO_MEDIUM_AREA = 96 ** 2


@dataclass(frozen=True, eq=False)
class Sample:
    """One image and its objects.

    Attributes:
        image: the image file.
        boxes: float32 ``(N, 4)`` normalised ``cx, cy, w, h`` in [0, 1] of the image (read-only).
        classes: int64 ``(N,)`` class ids (read-only).
        width, height: the image size in pixels when known (COCO gives it; YOLO labels don't,
            so it is ``None`` until something reads the image).

    The arrays are copied and made read-only, so a sample shared by data-loader workers cannot
    be changed by an augmentation that forgot to copy. ``eq=False``: samples compare by identity
    (array equality has no single truth value).
    """

    image: Path
    boxes: np.ndarray
    classes: np.ndarray
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.float32)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        classes = np.array(self.classes, dtype=np.int64).reshape(-1)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
        if len(classes) != len(boxes):
            raise ValueError(f"got {len(boxes)} boxes but {len(classes)} classes")
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither")
        boxes.flags.writeable = False
        classes.flags.writeable = False
        object.__setattr__(self, "image", Path(self.image))
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "classes", classes)

    def boxes_xyxy(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The boxes as float32 ``(N, 4)`` xyxy pixels of a ``width x height`` image.

        ``width``/``height`` default to the sample's own size; ValueError when neither is known.
        """
        width = self.width if width is None else width
        height = self.height if height is None else height
        if width is None or height is None:
            raise ValueError(f"{self.image}: image size unknown; pass width and height")
        return cxcywh_to_xyxy(self.boxes, width, height)


def cxcywh_to_xyxy(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised ``(N, 4)`` cx, cy, w, h -> float32 ``(N, 4)`` x1, y1, x2, y2 in pixels."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:] / 2
    xyxy = np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1) * [width, height, width, height]
    return xyxy.astype(np.float32)


def xyxy_to_cxcywh(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixel ``(N, 4)`` x1, y1, x2, y2 -> float32 ``(N, 4)`` normalised cx, cy, w, h."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / [width, height, width, height]
    return np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], axis=1).astype(np.float32)


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}


@dataclass
class DetectionDataset:
    """Samples plus class names.

    Attributes:
        samples: the images and their objects, in the order of the source.
        names: class names in class-id order (``len(names)`` is the class count).
        source: where the data came from (a path), for messages.
    """

    samples: list[Sample]
    names: list[str]
    source: str = field(default="<memory>")

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def summary(self) -> dict[str, Any]:
        """Counts and box statistics, JSON-ready.

        Returns a dict with ``source``, ``images``, ``boxes``, ``classes`` (class count),
        ``images_without_boxes``, ``per_class`` (list of ``{id, name, boxes, images}``),
        ``box_width`` / ``box_height`` (``{min, median, max}`` in normalised units, ``None``
        without boxes) and ``coco_area`` (``{small, medium, large, unknown}`` box counts by COCO's
        pixel-area ranges, ``unknown`` for images of unknown size; ``None`` when no size is known).
        """
        n = len(self.names)
        box_counts = np.zeros(n, dtype=np.int64)
        image_counts = np.zeros(n, dtype=np.int64)
        area = {"small": 0, "medium": 0, "large": 0, "unknown": 0}
        widths, heights = [], []
        for s in self.samples:
            if len(s.classes):
                box_counts += np.bincount(s.classes, minlength=n)[:n]
                image_counts[np.unique(s.classes[s.classes < n])] += 1
            widths.append(s.boxes[:, 2])
            heights.append(s.boxes[:, 3])
            if s.width is None or s.height is None:
                area["unknown"] += len(s.boxes)
                continue
            pixels = s.boxes[:, 2].astype(np.float64) * s.width * s.boxes[:, 3] * s.height
            area["small"] += int(np.count_nonzero(pixels < COCO_SMALL_AREA))
            area["medium"] += int(np.count_nonzero((pixels >= COCO_SMALL_AREA) & (pixels < COCO_MEDIUM_AREA)))
            area["large"] += int(np.count_nonzero(pixels >= COCO_MEDIUM_AREA))
        w = np.concatenate(widths) if widths else np.zeros(0, np.float32)
        h = np.concatenate(heights) if heights else np.zeros(0, np.float32)
        known_sizes = any(s.width is not None for s in self.samples)
        return {
            "source": self.source,
            "images": len(self.samples),
            "boxes": int(w.size),
            "classes": n,
            "images_without_boxes": sum(1 for s in self.samples if len(s.boxes) == 0),
            "per_class": [{"id": i, "name": name, "boxes": int(box_counts[i]), "images": int(image_counts[i])}
                          for i, name in enumerate(self.names)],
            "box_width": _stats(w),
            "box_height": _stats(h),
            "coco_area": area if known_sizes else None,
        }

    def split(self, fraction: float, seed: int) -> tuple[DetectionDataset, DetectionDataset]:
        """Split into ``(first, second)`` where ``first`` holds ``round(fraction * len)`` samples.

        Typically ``train, val = dataset.split(0.8, seed=0)``. The choice is a permutation drawn
        from ``seed`` alone, so the same seed and length give the same split on any machine; both
        parts keep the source order. For ``0 < fraction < 1`` and two or more samples, neither part
        is empty.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}")
        n = len(self.samples)
        count = int(round(fraction * n))
        if 0.0 < fraction < 1.0 and n >= 2:
            count = min(max(count, 1), n - 1)
        chosen = np.zeros(n, dtype=bool)
        chosen[np.random.default_rng(seed).permutation(n)[:count]] = True
        first = [s for s, c in zip(self.samples, chosen) if c]
        second = [s for s, c in zip(self.samples, chosen) if not c]
        return (DetectionDataset(first, list(self.names), f"{self.source} (split {fraction:g} of seed {seed})"),
                DetectionDataset(second, list(self.names), f"{self.source} (split {1 - fraction:g} of seed {seed})"))


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
    # Imported here: the format modules build Samples, so they import this module.
    from yolov3_trt.data import coco_format, yolo_format

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
