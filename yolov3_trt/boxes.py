"""Box maths, in one place: formats, conversions, areas and IoU (numpy, float64).

Formats (the names ``torchvision.ops.box_convert`` uses), each an array whose last axis holds
four numbers in any one unit (pixels, or fractions of the image):

- ``"xyxy"``: ``x1, y1, x2, y2``, the top-left and bottom-right corners. A box is valid when
  ``x1 <= x2`` and ``y1 <= y2``; this is the format of every box the package returns.
- ``"cxcywh"``: ``cx, cy, w, h``, the centre and the size (YOLO labels, Darknet's ``box``).
- ``"xywh"``: ``x1, y1, w, h``, the top-left corner and the size (COCO's ``bbox``).

Coordinates are continuous: a box's area is ``(x2 - x1) * (y2 - y1)`` (no ``+ 1``), as
pycocotools, torchvision and Darknet compute it.

IoU is ``inter / union`` with ``inter`` the area of the intersection (its width and height
clipped at 0, so boxes that do not overlap, or an inverted box, share nothing) and ``union =
area_a + area_b - inter``, evaluated in float64 in exactly that order. **The empty union has
one answer: 0.** When the union is not positive (both boxes have zero area, or a coordinate is
NaN), the IoU is 0, never NaN. So IoU is in [0, 1] for every finite input; only boxes with
infinite coordinates can give NaN (``inf / inf``), which compares false with every threshold.
A greedy NMS that suppresses at ``IoU > t`` with ``t >= 0`` therefore never suppresses with an
empty union, as torchvision's (whose 0/0 is NaN) does not either. The plugin kernel's
(``plugins/yolo_decode_nms/decode_nms.cuh`` ``box_iou``) takes the same float64 steps and the same
rule (0 when the union is not positive), so it agrees for every threshold.

Every numpy caller (NMS in :mod:`yolov3_trt.postprocess`, AP matching in
:mod:`yolov3_trt.evaluate.metrics`, label grouping in :mod:`yolov3_trt.visualize`, k-means
anchors in :mod:`yolov3_trt.anchors`, dataset conversions in :mod:`yolov3_trt.data`) uses these
functions. The torch twin is :func:`yolov3_trt.train.loss.box_iou_cxcywh` (``cxcywh`` boxes, the
same convention, the same answer for an empty union; ``tests/test_boxes.py`` checks they agree).
"""
from __future__ import annotations

import numpy as np

FORMATS = ("xyxy", "cxcywh", "xywh")


def _as_boxes(boxes: np.ndarray) -> np.ndarray:
    """``boxes`` as an array with a last axis of 4; integer input becomes float64."""
    boxes = np.asarray(boxes)
    if not np.issubdtype(boxes.dtype, np.floating):
        boxes = boxes.astype(np.float64)
    if boxes.size == 0 and boxes.ndim < 2:
        boxes = boxes.reshape(0, 4)
    if boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape (..., 4), got {boxes.shape}")
    return boxes


def _to_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "xyxy":
        return boxes
    if fmt == "cxcywh":
        half = boxes[..., 2:] / 2
        return np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1)
    return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], axis=-1)


def _from_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "xyxy":
        return boxes
    size = boxes[..., 2:] - boxes[..., :2]
    if fmt == "cxcywh":
        return np.concatenate([(boxes[..., :2] + boxes[..., 2:]) / 2, size], axis=-1)
    return np.concatenate([boxes[..., :2], size], axis=-1)


def box_convert(boxes: np.ndarray, in_fmt: str, out_fmt: str) -> np.ndarray:
    """``boxes`` ``(..., 4)`` from ``in_fmt`` to ``out_fmt`` (see :data:`FORMATS`), a new array.

    Floating input keeps its dtype; integer input is converted to float64.
    """
    for fmt in (in_fmt, out_fmt):
        if fmt not in FORMATS:
            raise ValueError(f"unknown box format {fmt!r} (expected {', '.join(FORMATS)})")
    boxes = _as_boxes(boxes)
    if in_fmt == out_fmt:
        return boxes.copy()
    return _from_xyxy(_to_xyxy(boxes, in_fmt), out_fmt)


def box_area(boxes: np.ndarray) -> np.ndarray:
    """``(..., 4)`` xyxy -> ``(...)`` float64 areas ``(x2 - x1) * (y2 - y1)`` (valid boxes)."""
    b = _as_boxes(boxes).astype(np.float64, copy=False)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]``: xyxy ``(..., 4)`` arrays broadcast against each other.

    The one IoU formula (module docstring): float64, 0 for an empty union. Each pair is computed
    element by element, so the value of a pair does not depend on how pairs are batched.
    """
    a = _as_boxes(a).astype(np.float64, copy=False)
    b = _as_boxes(b).astype(np.float64, copy=False)
    inter_w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0)
    inter_h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = inter_w * inter_h
    union = box_area(a) + box_area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix: every xyxy box of ``a`` ``(N, 4)`` with every one of ``b`` ``(M, 4)`` -> ``(N, M)`` float64."""
    a = _as_boxes(a).reshape(-1, 4)
    b = _as_boxes(b).reshape(-1, 4)
    return paired_iou(a[:, None, :], b[None, :, :])


def wh_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of box shapes ``(N, 2)`` and ``(M, 2)`` ``(w, h)``, placed with a common corner
    (or centre: the same value) -> ``(N, M)`` float64; the distance of k-means anchors."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    zeros_a, zeros_b = np.zeros_like(a), np.zeros_like(b)
    return box_iou(np.concatenate([zeros_a, a], axis=1), np.concatenate([zeros_b, b], axis=1))
