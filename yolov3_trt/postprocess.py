"""Decode YOLOv3 head outputs and run NMS: the numpy reference for the CUDA plugin.

Darknet semantics (``yolo_layer.c``, ``box.c``), matched exactly:

- decode: ``bx = (sigmoid(tx) + cx) / W``, ``by = (sigmoid(ty) + cy) / H``,
  ``bw = pw * exp(tw) / net_w``, ``bh = ph * exp(th) / net_h`` (normalised; scaled here to
  network-input pixels), anchors ``(pw, ph)`` in network pixels;
- score of class ``c`` = ``sigmoid(obj) * sigmoid(cls_c)``: multi-label, no softmax, so one box
  may yield several classes; a candidate is kept when its score is strictly above ``conf``;
- per-class greedy NMS: a box is suppressed when its IoU with a kept box of the same class is
  strictly above the threshold.

Clarity and exactness come before speed here; sigmoids are evaluated in float64 and rounded to
float32 (as Darknet's ``1./(1. + exp(-x))``), boxes in float64.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from yolov3_trt.darknet.layers import YoloHead

logger = logging.getLogger(__name__)

DEFAULT_CONF = 0.5   # Darknet's `detect` default threshold
DEFAULT_IOU = 0.45   # Darknet's NMS threshold
DEFAULT_MAX_DET = 100
# Candidates kept for NMS, the best by score. Darknet has no cap; with trained weights even an
# evaluation threshold of 0.005 rarely passes this many (box, class) pairs, but an untrained or
# broken model can pass ~500k, which would take minutes of O(n^2) NMS. A fixed capacity is also
# what the GPU plugin has, so the reference takes the same cut: by score, never by arrival order.
DEFAULT_PRE_NMS_TOP_K = 4096

ImageDetections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (K,4), scores (K,), class_ids (K,)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float64, without overflow for large ``|x|``.

    ``1 / (1 + e^-x)`` for ``x >= 0`` (Darknet's formula) and ``e^x / (1 + e^x)`` below, both
    written as ``num / (1 + e^-|x|)`` so no branch ever exponentiates a large positive number.
    """
    x = np.asarray(x, dtype=np.float64)
    e = np.abs(x, out=np.empty_like(x))  # an array even for 0-d input, so `out=` works below
    np.negative(e, out=e)
    with np.errstate(under="ignore"):  # e^-|x| underflowing to 0 is the right limit
        np.exp(e, out=e)
    out = np.where(x >= 0, 1.0, e)
    e += 1.0
    out /= e  # in place: this runs on every class logit of every box
    return out


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int]:
    try:
        net_w, net_h = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise ValueError(f"input_size must be (net_w, net_h), got {input_size!r}") from None
    if net_w <= 0 or net_h <= 0:
        raise ValueError(f"input_size must be positive, got {input_size!r}")
    return net_w, net_h


def _check_outputs(outputs: Sequence[np.ndarray], heads: Sequence[YoloHead]) -> tuple[int, int]:
    """Validate head outputs against their heads; return ``(batch, classes)``."""
    if len(outputs) != len(heads):
        raise ValueError(f"got {len(outputs)} outputs for {len(heads)} yolo heads")
    if not heads:
        raise ValueError("decode needs at least one yolo head")
    classes = heads[0].classes
    batch = None
    for i, (out, head) in enumerate(zip(outputs, heads)):
        if head.classes != classes:
            raise ValueError(f"all heads must share the class count: head 0 has {classes}, "
                             f"head {i} has {head.classes}")
        if out.ndim != 4:
            raise ValueError(f"output {i} must be (B, A*(5+C), H, W), got shape {out.shape}")
        expected = len(head.anchors) * (5 + classes)
        if out.shape[1] != expected:
            raise ValueError(f"output {i} has {out.shape[1]} channels, expected {expected} "
                             f"= {len(head.anchors)} anchors * (5 + {classes} classes)")
        if batch is None:
            batch = out.shape[0]
        elif out.shape[0] != batch:
            raise ValueError(f"output {i} has batch {out.shape[0]}, output 0 has {batch}")
    return int(batch), classes


def _decode_head(raw: np.ndarray, head: YoloHead, net_w: int, net_h: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One head ``(B, A*(5+C), H, W)`` -> boxes ``(B, H*W*A, 4)`` xyxy float64 in net pixels,
    objectness ``(B, H*W*A)`` float32, and the class *logits* ``(B, H*W*A, C)`` (a view, not
    yet through the sigmoid, so callers can evaluate only the rows they need).

    Candidates are ordered cell ``i = y*W + x``, then anchor ``a``.
    """
    batch, _, height, width = raw.shape
    anchors = np.asarray(head.anchors, dtype=np.float64)  # (A, 2) as (pw, ph)
    num_anchors = len(anchors)
    # (B, A, 5+C, H, W) -> (B, H, W, A, 5+C): Darknet's loop order is cell, then anchor.
    pred = raw.reshape(batch, num_anchors, 5 + head.classes, height, width).transpose(0, 3, 4, 1, 2)
    t = pred[..., :5].astype(np.float64)
    cy, cx = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64),
                         indexing="ij")
    with np.errstate(over="ignore"):  # exp(tw) may overflow to inf for garbage inputs; keep it
        bx = (sigmoid(t[..., 0]) + cx[None, :, :, None]) / width * net_w
        by = (sigmoid(t[..., 1]) + cy[None, :, :, None]) / height * net_h
        bw = anchors[:, 0] * np.exp(t[..., 2])  # (pw * e^tw / net_w) * net_w
        bh = anchors[:, 1] * np.exp(t[..., 3])
    boxes = np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], axis=-1)
    count = height * width * num_anchors
    objectness = sigmoid(t[..., 4]).astype(np.float32)
    return (boxes.reshape(batch, count, 4), objectness.reshape(batch, count),
            pred[..., 5:].reshape(batch, count, head.classes))


def _decode_parts(outputs: Sequence[np.ndarray], heads: Sequence[YoloHead], input_size: Sequence[int]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated decode of all heads: boxes float32, objectness float32, class logits (B, N, C)."""
    net_w, net_h = _check_input_size(input_size)
    outputs = [np.asarray(out) for out in outputs]
    _check_outputs(outputs, heads)
    parts = [_decode_head(out, head, net_w, net_h) for out, head in zip(outputs, heads)]
    boxes = np.concatenate([p[0] for p in parts], axis=1).astype(np.float32)
    objectness = np.concatenate([p[1] for p in parts], axis=1)
    class_logits = np.concatenate([p[2] for p in parts], axis=1)
    return boxes, objectness, class_logits


def decode(outputs: Sequence[np.ndarray], heads: Sequence[YoloHead], input_size: Sequence[int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode raw YOLOv3 head outputs into boxes, objectness and class probabilities.

    Args:
        outputs: one array per ``[yolo]`` head, ``(B, A*(5+C), H, W)``, Darknet's layout:
            channel ``a*(5+C) + k`` with ``k`` = tx, ty, tw, th, obj, cls0, cls1, ...
        heads: the matching :class:`YoloHead` (masked anchors in network pixels, class count).
        input_size: network input ``(net_w, net_h)``.

    Returns:
        ``boxes`` ``(B, N, 4)`` float32 xyxy in network-input pixels, ``objectness`` ``(B, N)``
        float32 and ``class_probs`` ``(B, N, C)`` float32 (sigmoids, not multiplied by
        objectness). Candidates ``N`` are ordered head by head, then cell ``y*W + x``, then
        anchor, as Darknet's ``get_yolo_detections`` loops.
    """
    boxes, objectness, class_logits = _decode_parts(outputs, heads, input_size)
    return boxes, objectness, sigmoid(class_logits).astype(np.float32)


def _descending_order(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score; equal scores keep ascending index (stable sort)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def _check_nms_inputs(boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    if scores.shape != (boxes.shape[0],):
        raise ValueError(f"scores must have shape ({boxes.shape[0]},), got {scores.shape}")
    return boxes, scores


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms`` and Darknet's ``do_nms_sort``.

    Args:
        boxes: ``(N, 4)`` xyxy; IoU = inter / (area1 + area2 - inter), areas
            ``(x2 - x1) * (y2 - y1)`` (no +1), computed in float64.
        scores: ``(N,)``.
        iou_threshold: a box is dropped when its IoU with an already kept box is strictly
            greater than this (a NaN IoU, from two empty boxes, suppresses nothing).

    Returns:
        int64 indices of the kept boxes in descending score order; equal scores are visited,
        and returned, lowest index first.
    """
    boxes, scores = _check_nms_inputs(boxes, scores)
    if boxes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = _descending_order(scores)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0)
        inter_h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0)
        inter = inter_w * inter_h
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(iou > iou_threshold)]  # not `<=`: NaN must survive, as in torchvision
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """Per-class NMS: boxes of different classes never suppress each other.

    Runs :func:`nms` on each class separately (no coordinate-offset trick, which loses float
    precision near the threshold).

    Returns:
        int64 indices of the kept boxes in descending score order, equal scores by ascending
        index.
    """
    boxes, scores = _check_nms_inputs(boxes, scores)
    class_ids = np.asarray(class_ids)
    if class_ids.shape != scores.shape:
        raise ValueError(f"class_ids must have shape {scores.shape}, got {class_ids.shape}")
    if boxes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    kept = [members[nms(boxes[members], scores[members], iou_threshold)]
            for members in (np.flatnonzero(class_ids == c) for c in np.unique(class_ids))]
    keep = np.concatenate(kept)
    # Primary key descending score, secondary ascending index (lexsort's last key is primary).
    return keep[np.lexsort((keep, -scores[keep].astype(np.float64)))].astype(np.int64)


def _top_k(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Ascending positions of the ``k`` best ``scores`` (ties: lower position wins); all if fewer."""
    if k is None or scores.size <= k:
        return np.arange(scores.size)
    return np.sort(_descending_order(scores)[:k])


def _image_detections(boxes: np.ndarray, objectness: np.ndarray, class_logits: np.ndarray,
                      conf: float, iou: float, max_det: int, pre_nms_top_k: int | None) -> ImageDetections:
    """Candidates, NMS and top-``max_det`` for one image (arrays without the batch axis)."""
    num_classes = class_logits.shape[1]
    threshold = np.float32(conf)
    # A float32 product with a factor <= 1 never exceeds the other factor, so boxes with
    # objectness <= conf cannot score above it (Darknet skips them the same way).
    rows = np.flatnonzero(objectness > threshold)
    # float32 product of float32 sigmoids, as Darknet's `objectness * predictions[class_index]`
    scores_rows = objectness[rows, None] * sigmoid(class_logits[rows]).astype(np.float32)
    # Candidate index = box_index * C + class: row-major order of the (N, C) score matrix, and
    # `rows` is ascending, so flattening the selected rows keeps that order.
    flat = np.flatnonzero(scores_rows.ravel() > threshold)
    flat = flat[_top_k(scores_rows.ravel()[flat], pre_nms_top_k)]
    row_pos, class_ids = np.divmod(flat, num_classes)
    box_index = rows[row_pos]
    scores = scores_rows.ravel()[flat]
    keep = batched_nms(boxes[box_index], scores, class_ids, iou)[:max_det]
    return (boxes[box_index[keep]].astype(np.float32), scores[keep].astype(np.float32),
            class_ids[keep].astype(np.int32))


def postprocess(outputs: Sequence[np.ndarray], heads: Sequence[YoloHead], input_size: Sequence[int],
                conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, max_det: int = DEFAULT_MAX_DET,
                pre_nms_top_k: int | None = DEFAULT_PRE_NMS_TOP_K) -> list[ImageDetections]:
    """Decode, threshold, per-class NMS and keep the best ``max_det``, for each image.

    Candidates are (box, class) pairs with ``sigmoid(obj) * sigmoid(cls) > conf`` (float32
    product and comparison against ``float32(conf)``, as Darknet's float ``thresh``); one box
    may yield several classes. When more than ``pre_nms_top_k`` candidates pass, only the
    ``pre_nms_top_k`` best by score enter NMS (``None``: no cap). Per-class NMS at ``iou``
    (:func:`batched_nms`) follows, then the first ``max_det`` survivors are kept.

    Order and ties: detections come in descending score; equal scores are ordered by candidate
    index ``box_index * C + class``, where ``box_index`` follows :func:`decode`'s order (head,
    cell ``y*W + x``, anchor). The top-K cut, NMS and ``max_det`` all use that same order.

    Returns:
        One ``(boxes (K, 4) float32 xyxy in network-input pixels, scores (K,) float32,
        class_ids (K,) int32)`` per image, ``K <= max_det``.
    """
    if max_det < 0:
        raise ValueError(f"max_det must be >= 0, got {max_det}")
    if pre_nms_top_k is not None and pre_nms_top_k < 1:
        raise ValueError(f"pre_nms_top_k must be >= 1 or None, got {pre_nms_top_k}")
    boxes, objectness, class_logits = _decode_parts(outputs, heads, input_size)
    return [_image_detections(boxes[b], objectness[b], class_logits[b], conf, iou, max_det, pre_nms_top_k)
            for b in range(boxes.shape[0])]
