"""The detection dataset model: :class:`Sample` and :class:`DetectionDataset`.

A :class:`DetectionDataset` is a list of :class:`Sample` (an image file, its boxes as normalised
``cx, cy, w, h`` and int64 class ids) plus the class names. The format readers
(:mod:`~yolov3_trt.data.yolo_format`, :mod:`~yolov3_trt.data.coco_format`) build these; the
loader that picks a reader is :func:`yolov3_trt.data.dataset.load_dataset`. This module imports
no reader, so the readers and the loader depend on it and not on each other.

Box conversions between normalised ``cxcywh`` and pixel ``xyxy`` go through
:func:`yolov3_trt.boxes.box_convert`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yolov3_trt.boxes import box_convert

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
    xyxy = box_convert(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), "cxcywh", "xyxy")
    return (xyxy * [width, height, width, height]).astype(np.float32)


def xyxy_to_cxcywh(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixel ``(N, 4)`` x1, y1, x2, y2 -> float32 ``(N, 4)`` normalised cx, cy, w, h."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / [width, height, width, height]
    return box_convert(b, "xyxy", "cxcywh").astype(np.float32)


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
