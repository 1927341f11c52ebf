"""Decode YOLOv3 head outputs and run NMS in numpy: the Detector's ``postprocessor="numpy"``.

This is the named numpy fallback of :class:`yolov3_trt.runtime.detector.Detector` (used when the
decode + NMS host library is not built, or asked for) and the package's public ``decode``,
``nms``, ``batched_nms`` and ``postprocess``. It gives the same detections as the plugin
(``plugin/host.py`` runs the kernel's source on the CPU); ``tests/test_postprocess.py`` holds the
short, obviously-correct reference both are checked against. IoU is :mod:`yolov3_trt.boxes`'.

Contract: :func:`postprocess` ``(outputs, decode, nms)`` and
:func:`yolov3_trt.plugin.host.postprocess_host` take the same arguments and give the same
detections, so a caller may use either. ``decode`` is a :class:`~yolov3_trt.specs.DecodeSpec`
(anchors, strides, grids, classes, input size: a model's ``model.decode_spec(size)``, a file's
``metadata.decode_spec(path)``, or :meth:`DecodeSpec.from_outputs`), ``nms`` an
:class:`~yolov3_trt.specs.NmsSpec` (default :data:`DEFAULT_NMS`); both validated themselves.
``outputs`` are one array per head, in the spec's order, each exactly
``(B,) + decode.head_shapes()[i]`` with the same ``B`` (:func:`check_outputs`: a one-line
ValueError naming the output otherwise). Boxes are xyxy in network-input pixels.

Darknet semantics (``yolo_layer.c``, ``box.c``), matched exactly:

- decode: ``bx = (sigmoid(tx) + cx) / W``, ``by = (sigmoid(ty) + cy) / H``,
  ``bw = pw * exp(tw) / net_w``, ``bh = ph * exp(th) / net_h`` (normalised; scaled here to
  network-input pixels), anchors ``(pw, ph)`` in network pixels;
- score of class ``c`` = ``sigmoid(obj) * sigmoid(cls_c)``: multi-label, no softmax, so one box
  may yield several classes; a candidate is kept when its score is strictly above ``conf``;
- per-class greedy NMS: a box is suppressed when its IoU with a kept box of the same class is
  strictly above the threshold.

Exactness comes first: sigmoids are evaluated in float64 and rounded to float32 (as Darknet's
``1./(1. + exp(-x))``), boxes in float64. Speed comes from doing less, never from computing
differently: :func:`postprocess` takes ``sigmoid(obj)`` of every candidate but decodes boxes and
class sigmoids only where ``obj > conf`` (no other row can score above ``conf``), and NMS gets
the IoUs of all same-class pairs in one vectorised step. Each value still comes from the same
element-wise float64 formula as in :func:`decode` (one helper each for boxes and sigmoid, and
:func:`yolov3_trt.boxes.paired_iou`), so the detections are bit-identical to decoding everything.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from yolov3_trt.boxes import paired_iou
from yolov3_trt.specs import DecodeSpec, HeadSpec, NmsSpec

logger = logging.getLogger(__name__)

DEFAULT_CONF = 0.5   # Darknet's `detect` default threshold
DEFAULT_IOU = 0.45   # Darknet's NMS threshold
DEFAULT_MAX_DET = 100
# Candidates kept for NMS, the best by score. Darknet has no cap; with trained weights even an
# evaluation threshold of 0.005 rarely passes this many (box, class) pairs, but an untrained or
# broken model can pass ~500k, which would take minutes of O(n^2) NMS. A fixed capacity is also
# what the GPU plugin has, so the reference takes the same cut: by score, never by arrival order.
# 3840 is TensorRT's TopK limit, so an end2end ONNX with this default also builds as an engine.
DEFAULT_PRE_NMS_TOP_K = 3840

DEFAULT_NMS = NmsSpec(conf=DEFAULT_CONF, iou=DEFAULT_IOU, max_det=DEFAULT_MAX_DET, pre_nms_top_k=DEFAULT_PRE_NMS_TOP_K)

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


def check_outputs(outputs: Sequence[np.ndarray], decode: DecodeSpec) -> int:
    """Validate head outputs against ``decode`` (ValueError naming the output); return the batch.

    Output ``i`` must be ``(B,) + decode.head_shapes()[i]`` exactly (channels ``A*(5+C)``, grid
    ``(grid_h, grid_w)``), with one ``B`` for all heads.
    """
    if not isinstance(decode, DecodeSpec):
        raise TypeError(f"decode must be a DecodeSpec (model.decode_spec(size), metadata.decode_spec() or "
                        f"DecodeSpec.from_outputs), got {type(decode).__name__}")
    if len(outputs) != len(decode.heads):
        raise ValueError(f"got {len(outputs)} outputs for {len(decode.heads)} yolo heads")
    batch = None
    for i, (out, shape) in enumerate(zip(outputs, decode.head_shapes())):
        if out.ndim != 4 or tuple(out.shape[1:]) != shape:
            anchors = len(decode.heads[i].anchors)
            raise ValueError(f"output {i} has shape {tuple(out.shape)}, expected (B, A*(5+C), H, W) = "
                             f"(B, {', '.join(map(str, shape))}) for {anchors} anchors, "
                             f"{decode.num_classes} classes and a {shape[2]}x{shape[1]} grid")
        if batch is None:
            batch = out.shape[0]
        elif out.shape[0] != batch:
            raise ValueError(f"output {i} has batch {out.shape[0]}, output 0 has {batch}")
    return int(batch)


def _box_rows(t: np.ndarray, cx: np.ndarray, cy: np.ndarray, anchors: np.ndarray,
              grid: tuple[int, int], net_size: tuple[int, int]) -> np.ndarray:
    """Boxes of some candidates: ``t`` ``(n, 4)`` float64 ``tx, ty, tw, th``, their cell ``cx, cy``
    and anchors ``(n, 2)`` float64 ``(pw, ph)``, in a ``grid`` ``(H, W)`` -> ``(n, 4)`` xyxy float64
    in network pixels. The one place the box equations are written (decode and postprocess)."""
    (height, width), (net_w, net_h) = grid, net_size
    with np.errstate(over="ignore"):  # exp(tw) may overflow to inf for garbage inputs; keep it
        bx = (sigmoid(t[:, 0]) + cx) / width * net_w
        by = (sigmoid(t[:, 1]) + cy) / height * net_h
        bw = anchors[:, 0] * np.exp(t[:, 2])  # (pw * e^tw / net_w) * net_w
        bh = anchors[:, 1] * np.exp(t[:, 3])
    return np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], axis=-1)


def _head_view(raw: np.ndarray, head: HeadSpec, classes: int) -> np.ndarray:
    """``(B, A*(5+C), H, W)`` -> the view ``(B, A, 5+C, H*W)``."""
    return raw.reshape(raw.shape[0], len(head.anchors), 5 + classes, head.cells)


def _objectness(raw: np.ndarray, head: HeadSpec, classes: int) -> np.ndarray:
    """``sigmoid(obj)`` ``(B, H*W*A)`` float32 of one head, candidates ordered cell, then anchor."""
    obj = sigmoid(_head_view(raw, head, classes)[:, :, 4]).astype(np.float32)  # (B, A, H*W)
    return obj.transpose(0, 2, 1).reshape(raw.shape[0], -1)


def _decode_rows(raw: np.ndarray, head: HeadSpec, decode: DecodeSpec, image: int, rows: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(n, 4)`` float64 and class logits ``(n, C)`` float32 of the candidates ``rows``
    (ascending, ``cell * A + anchor``) of one head, for one image of the batch."""
    grid = (head.grid[1], head.grid[0])  # (H, W)
    anchors = np.asarray(head.anchors, dtype=np.float64)
    cell, anchor = np.divmod(rows, len(anchors))
    cy, cx = np.divmod(cell, grid[1])
    values = _head_view(raw, head, decode.num_classes)[image, anchor, :, cell]  # (n, 5+C): one per row
    boxes = _box_rows(values[:, :4].astype(np.float64), cx.astype(np.float64), cy.astype(np.float64),
                      anchors[anchor], grid, decode.input_size)
    return boxes, values[:, 5:]


def _checked(outputs: Sequence[np.ndarray], decode: DecodeSpec) -> list[np.ndarray]:
    outputs = [np.asarray(out) for out in outputs]
    check_outputs(outputs, decode)
    return outputs


def decode(outputs: Sequence[np.ndarray], decode: DecodeSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode raw YOLOv3 head outputs into boxes, objectness and class probabilities.

    Args:
        outputs: one array per ``[yolo]`` head, ``(B, A*(5+C), H, W)``, Darknet's layout:
            channel ``a*(5+C) + k`` with ``k`` = tx, ty, tw, th, obj, cls0, cls1, ...
            (:func:`check_outputs`).
        decode: the heads (anchors in network pixels, grids), class count and network input.

    Returns:
        ``boxes`` ``(B, N, 4)`` float32 xyxy in network-input pixels, ``objectness`` ``(B, N)``
        float32 and ``class_probs`` ``(B, N, C)`` float32 (sigmoids, not multiplied by
        objectness). Candidates ``N`` are ordered head by head, then cell ``y*W + x``, then
        anchor, as Darknet's ``get_yolo_detections`` loops.
    """
    spec = decode
    outputs = _checked(outputs, spec)
    batch = outputs[0].shape[0]
    everything = [np.arange(head.num_boxes) for head in spec.heads]
    boxes, class_logits = [], []
    for b in range(batch):
        parts = [_decode_rows(out, head, spec, b, rows) for out, head, rows in zip(outputs, spec.heads, everything)]
        boxes.append(np.concatenate([p[0] for p in parts]).astype(np.float32))
        class_logits.append(np.concatenate([p[1] for p in parts]))
    objectness = np.concatenate([_objectness(out, head, spec.num_classes) for out, head in zip(outputs, spec.heads)],
                                axis=1)
    return (np.stack(boxes), objectness, sigmoid(np.stack(class_logits)).astype(np.float32))


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
        boxes: ``(N, 4)`` xyxy; IoU as :func:`yolov3_trt.boxes.paired_iou` (float64, no +1,
            0 for an empty union).
        scores: ``(N,)``.
        iou_threshold: a box is dropped when its IoU with an already kept box is strictly
            greater than this (so with a threshold >= 0, two empty boxes never suppress each
            other, as in torchvision, whose IoU is NaN there).

    Returns:
        int64 indices of the kept boxes in descending score order; equal scores are visited,
        and returned, lowest index first.
    """
    boxes, scores = _check_nms_inputs(boxes, scores)
    return _class_nms(boxes, scores, np.zeros(scores.shape, dtype=np.int64), iou_threshold)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                iou_threshold: float) -> np.ndarray:
    """Per-class NMS: boxes of different classes never suppress each other.

    The same as :func:`nms` on each class separately (no coordinate-offset trick, which loses
    float precision near the threshold).

    Returns:
        int64 indices of the kept boxes in descending score order, equal scores by ascending
        index.
    """
    boxes, scores = _check_nms_inputs(boxes, scores)
    class_ids = np.asarray(class_ids)
    if class_ids.shape != scores.shape:
        raise ValueError(f"class_ids must have shape {scores.shape}, got {class_ids.shape}")
    return _class_nms(boxes, scores, class_ids, iou_threshold)


_PAIRWISE_NMS_MAX = 128  # classes with up to this many boxes get all their IoUs in one go ...
_PAIRWISE_PAIRS_MAX = 1 << 18  # ... unless that makes more pairs than this (memory), all classes


def _class_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
               iou_threshold: float) -> np.ndarray:
    """Greedy per-class NMS of float64 ``boxes``; kept indices, best first (see :func:`nms`).

    Every class is visited in the global order (descending score, then ascending index)
    restricted to it. For the usual small classes the IoUs of all same-class pairs are computed
    at once and the greedy pass is solved on them (:func:`_greedy_on_pairs`); other classes run
    the sequential loop. Both decide with the same IoU values (:func:`~yolov3_trt.boxes.paired_iou`,
    element by element), so they keep the same boxes.
    """
    count = scores.shape[0]
    if count == 0:
        return np.empty(0, dtype=np.int64)
    order = _descending_order(scores)
    by_class = order[np.argsort(class_ids[order], kind="stable")]  # classes, each best first
    sorted_ids = class_ids[by_class]
    ends = np.append(np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1, count)
    sizes = np.diff(ends, prepend=0)
    pairwise = sizes <= _PAIRWISE_NMS_MAX
    if np.sum(sizes[pairwise] * (sizes[pairwise] - 1) // 2) > _PAIRWISE_PAIRS_MAX:
        pairwise[:] = False
    # Same-class pairs (i, j), i before j, as positions in `by_class`, for the pairwise classes.
    position = np.arange(count)
    later = np.where(np.repeat(pairwise, sizes), np.repeat(ends, sizes) - position - 1, 0)
    first = np.repeat(position, later)
    second = first + 1 + np.arange(len(first)) - np.repeat(np.cumsum(later) - later, later)
    suppress = paired_iou(boxes[by_class[first]], boxes[by_class[second]]) > iou_threshold
    alive = _greedy_on_pairs(count, first[suppress], second[suppress]) & np.repeat(pairwise, sizes)
    kept = np.zeros(count, dtype=bool)
    kept[by_class[alive]] = True
    for end, size in zip(ends[~pairwise].tolist(), sizes[~pairwise].tolist()):
        kept[_sequential_nms(boxes, by_class[end - size:end], iou_threshold)] = True
    return order[kept[order]].astype(np.int64)


def _greedy_on_pairs(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Greedy NMS outcome for ``count`` boxes in visiting order, where box ``first[k]`` (visited
    earlier) would suppress box ``second[k]``: the boolean mask of kept boxes.

    The greedy rule, "a box is kept unless an earlier *kept* box suppresses it", has exactly one
    solution, because each box depends only on earlier ones. Iterating the rule from "all kept"
    fixes one more level of that dependency chain per step, so it reaches the solution after at
    most (longest suppression chain + 1) vectorised steps, typically two or three.
    """
    alive = np.ones(count, dtype=bool)
    while True:
        blocked = np.zeros(count, dtype=bool)
        blocked[second[alive[first]]] = True
        if np.array_equal(blocked, ~alive):
            return alive
        alive = ~blocked


def _sequential_nms(boxes: np.ndarray, order: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS visiting ``order``, one kept box at a time; the kept indices."""
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        order = rest[~(paired_iou(boxes[best], boxes[rest]) > iou_threshold)]  # not `<=`: NaN survives
    return np.asarray(keep, dtype=np.intp)


def _top_k(scores: np.ndarray, k: int | None) -> np.ndarray:
    """Ascending positions of the ``k`` best ``scores`` (ties: lower position wins); all if fewer."""
    if k is None or scores.size <= k:
        return np.arange(scores.size)
    return np.sort(_descending_order(scores)[:k])


def _image_detections(outputs: Sequence[np.ndarray], decode: DecodeSpec, nms: NmsSpec, image: int,
                      objectness: np.ndarray) -> ImageDetections:
    """Candidates, NMS and top-``max_det`` for one image of the batch; ``objectness`` ``(N,)``."""
    threshold = np.float32(nms.conf)
    # A float32 product with a factor <= 1 never exceeds the other factor, so boxes with
    # objectness <= conf cannot score above it (Darknet skips them the same way). Only those
    # rows are decoded: with a trained model, a few dozen of the ~10k (416) or ~23k (608).
    rows = np.flatnonzero(objectness > threshold)
    starts = np.cumsum([0, *(head.num_boxes for head in decode.heads)])
    parts = [_decode_rows(out, head, decode, image, rows[(rows >= lo) & (rows < hi)] - lo)
             for out, head, lo, hi in zip(outputs, decode.heads, starts[:-1], starts[1:])]
    boxes = np.concatenate([p[0] for p in parts]).astype(np.float32)  # (len(rows), 4)
    class_logits = np.concatenate([p[1] for p in parts])
    num_classes = class_logits.shape[1]
    # float32 product of float32 sigmoids, as Darknet's `objectness * predictions[class_index]`
    scores_rows = objectness[rows, None] * sigmoid(class_logits).astype(np.float32)
    # Candidate index = box_index * C + class: row-major order of the (N, C) score matrix, and
    # `rows` is ascending, so flattening the selected rows keeps that order.
    flat = np.flatnonzero(scores_rows.ravel() > threshold)
    flat = flat[_top_k(scores_rows.ravel()[flat], nms.pre_nms_top_k)]
    row_pos, class_ids = np.divmod(flat, num_classes)
    scores = scores_rows.ravel()[flat]
    keep = batched_nms(boxes[row_pos], scores, class_ids, nms.iou)[:nms.max_det]
    return (boxes[row_pos[keep]], scores[keep].astype(np.float32), class_ids[keep].astype(np.int32))


def postprocess(outputs: Sequence[np.ndarray], decode: DecodeSpec, nms: NmsSpec = DEFAULT_NMS
                ) -> list[ImageDetections]:
    """Decode, threshold, per-class NMS and keep the best ``max_det``, for each image.

    ``outputs`` as :func:`decode` takes them (checked against ``decode`` by :func:`check_outputs`).
    Candidates are (box, class) pairs with ``sigmoid(obj) * sigmoid(cls) > nms.conf`` (float32
    product and comparison against ``float32(conf)``, as Darknet's float ``thresh``); one box
    may yield several classes. When more than ``nms.pre_nms_top_k`` candidates pass, only the
    ``pre_nms_top_k`` best by score enter NMS (``None``: no cap). Per-class NMS at ``nms.iou``
    (:func:`batched_nms`) follows, then the first ``nms.max_det`` survivors are kept.

    Order and ties: detections come in descending score; equal scores are ordered by candidate
    index ``box_index * C + class``, where ``box_index`` follows :func:`decode`'s order (head,
    cell ``y*W + x``, anchor). The top-K cut, NMS and ``max_det`` all use that same order.

    Returns:
        One ``(boxes (K, 4) float32 xyxy in network-input pixels, scores (K,) float32,
        class_ids (K,) int32)`` per image, ``K <= max_det``.
    """
    if not isinstance(nms, NmsSpec):
        raise TypeError(f"nms must be an NmsSpec, got {type(nms).__name__}")
    outputs = _checked(outputs, decode)
    # sigmoid(obj) for every candidate; boxes and class sigmoids only where obj > conf.
    objectness = np.concatenate([_objectness(out, head, decode.num_classes)
                                 for out, head in zip(outputs, decode.heads)], axis=1)
    return [_image_detections(outputs, decode, nms, b, objectness[b]) for b in range(objectness.shape[0])]
