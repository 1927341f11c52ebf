"""A small two-class detection set: filled rectangles and ellipses on noise (issue #13's set).

``write_two_shapes(folder, 32)`` writes a YOLO folder (``images/*.png``, ``labels/*.txt``,
``classes.names``) through the project's writers; image ``i`` is a pure function of
``(seed, i)``. Run as a script to make the set by hand::

    python tests/train/two_shapes.py OUT [--images 32] [--size 256] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from yolov3_trt.data.dataset import DetectionDataset, Sample, xyxy_to_cxcywh
from yolov3_trt.data.yolo_format import write_yolo
from yolov3_trt.fileio import atomic_write_bytes

NAMES = ["rectangle", "ellipse"]


def render(seed: int, index: int, size: int = 256, max_objects: int = 4) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """BGR uint8 image, ``(N, 4)`` xyxy pixel boxes and class ids of image ``index``."""
    rng = np.random.default_rng([seed, index])
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # uniform noise
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls = int(rng.integers(0, 2))
        w, h = (int(v) for v in rng.integers(size // 10, size // 2, 2))
        x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if cls == 0:
            cv2.rectangle(image, (x0, y0), (x0 + w - 1, y0 + h - 1), colour, thickness=-1)
        else:
            cv2.ellipse(image, (x0 + w // 2, y0 + h // 2), (w // 2, h // 2), 0, 0, 360, colour, thickness=-1)
        boxes.append((x0, y0, x0 + w, y0 + h))
        classes.append(cls)
    # later objects cover earlier ones: keep only objects still mostly visible, with their full box
    keep = []
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        covered = any(b[0] <= x0 and b[1] <= y0 and b[2] >= x1 and b[3] >= y1 for b in boxes[k + 1:])
        overlap = max((_iou(boxes[k], b) for b in boxes[k + 1:]), default=0.0)
        if not covered and overlap < 0.3:
            keep.append(k)
    return image, np.array([boxes[k] for k in keep], np.float64).reshape(-1, 4), [classes[k] for k in keep]


def _iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def write_two_shapes(folder: str | os.PathLike, images: int = 32, *, size: int = 256, seed: int = 0) -> Path:
    """Write the set as a YOLO folder; returns ``folder``."""
    folder = Path(folder)
    samples = []
    for i in range(images):
        image, boxes, classes = render(seed, i, size)
        path = folder / "images" / f"{i:06d}.png"
        ok, data = cv2.imencode(".png", image)
        assert ok
        atomic_write_bytes(path, data.tobytes())
        samples.append(Sample(path, xyxy_to_cxcywh(boxes, size, size), classes, size, size))
    write_yolo(DetectionDataset(samples, NAMES, os.fspath(folder)), folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("output")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_two_shapes(args.output, args.images, size=args.size, seed=args.seed)
    print(f"wrote {args.images} images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
