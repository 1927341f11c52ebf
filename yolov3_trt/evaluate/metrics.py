"""Detection accuracy: COCO mAP through pycocotools, and the YOLOv3 paper's two proposed metrics.

Inputs, per image, in the same image order everywhere:

- ground truth ``(boxes, classes)``: boxes ``(N, 4)`` xyxy in image pixels, classes ``(N,)``
  0-based class ids;
- predictions ``(boxes, scores, classes)``: boxes ``(D, 4)`` xyxy in image pixels, scores
  ``(D,)``, classes ``(D,)``.

**COCO metrics** (:func:`coco_metrics`) are computed by pycocotools itself, not reimplemented:
AP averaged over IoU .50:.05:.95, AP50, AP75, AP for small/medium/large objects, AR@1/10/100.
Every ground-truth box is a non-crowd box whose area is its box area (YOLO labels carry no
masks, so APs/APm/APl of a COCO set differ slightly from official numbers, which use mask area).

**Global AP** (:meth:`Evaluation.global_ap`), one of the two metrics the YOLOv3 paper's rebuttal
suggests instead of per-class mAP: class labels are ignored. In each image, detections are taken
in descending score order and each is matched to the unmatched ground-truth box of *any* class
with the highest IoU, if that IoU >= t; a matched detection is a true positive, every other
detection a false positive (so a duplicate of an already found object is a false positive, even
with a different class). All detections of all images are then pooled and ranked by score, and
AP is the area under that precision/recall curve, recall relative to the total number of
ground-truth boxes, with COCO's 101-point interpolation. ``global_ap50`` uses t = 0.5;
``global_ap`` averages t = 0.50, 0.55, ..., 0.95.

**Per-image AP** (:meth:`Evaluation.per_image_ap`), the rebuttal's other suggestion: within each
image, detections are matched class-aware (a detection can only match a ground-truth box of its
own class; otherwise as above), all of the image's detections form one ranked list, and AP is
computed from that list with recall relative to the image's ground-truth box count (101-point
interpolation). The dataset value is the plain mean over images. An image with ground truth but
no detections scores 0. An image without ground truth has no recall, so its AP is undefined: it
is excluded from the mean and counted in ``per_image_excluded`` (its detections are false
positives in the COCO and global metrics).

The matching rule is pycocotools' (score order with a stable sort, best unmatched IoU, IoU >= t,
equal IoUs going to the later ground-truth box), and so is the AP arithmetic, so the class-aware
matching pooled over images per class reproduces pycocotools' per-class AP (tested), except that
no per-image cap of 100 detections is applied here (the Detector's ``max_det`` caps instead).
"""
from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..boxes import box_convert, box_iou  # box_iou: matching's IoU, also yolov3_trt.evaluate.box_iou
from ..errors import YoloV3TrtError

# pycocotools' own threshold grids (COCOeval Params.setDetParams)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, int(np.round((1.0 - 0.0) / 0.01)) + 1, endpoint=True)
COCO_STAT_KEYS = ("map", "ap50", "ap75", "ap_small", "ap_medium", "ap_large",
                  "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")

GroundTruth = tuple[np.ndarray, np.ndarray]  # boxes (N, 4) xyxy pixels, classes (N,)
Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (D, 4) xyxy pixels, scores (D,), classes (D,)


# ---- inputs ------------------------------------------------------------------------------

def _ground_truth(item: GroundTruth, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(boxes float64 (N, 4), classes int64 (N,)), shapes checked."""
    boxes = np.asarray(item[0], dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(item[1], dtype=np.int64).reshape(-1)
    if len(boxes) != len(classes):
        raise ValueError(f"ground truth of image {index}: {len(boxes)} boxes but {len(classes)} classes")
    return boxes, classes


def _prediction(item: Prediction, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(boxes float64 (D, 4), scores float64 (D,), classes int64 (D,)), shapes checked."""
    boxes = np.asarray(item[0], dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(item[1], dtype=np.float64).reshape(-1)
    classes = np.asarray(item[2], dtype=np.int64).reshape(-1)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(f"predictions of image {index}: {len(boxes)} boxes, {len(scores)} scores, "
                         f"{len(classes)} classes")
    return boxes, scores, classes


def _check_lengths(ground_truth: Sequence, predictions: Sequence) -> None:
    if len(ground_truth) != len(predictions):
        raise ValueError(f"{len(ground_truth)} images of ground truth but {len(predictions)} of predictions")


# ---- matching and AP ---------------------------------------------------------------------

def match_detections(iou: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """Greedy matching of score-sorted detections to ground truth, at each IoU threshold.

    Args:
        iou: ``(D, G)`` IoU of each detection (rows in descending score order) with each
            ground-truth box; a pair that may not match (another class) holds -1.
        thresholds: ``(T,)`` IoU thresholds.

    Returns:
        ``(T, D)`` bool: detection d is a true positive at threshold t. Each detection takes the
        unmatched ground-truth box with the highest IoU >= t (ties: the later box, as
        pycocotools); each box is matched at most once.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    num_det, num_gt = iou.shape
    tp = np.zeros((len(thresholds), num_det), dtype=bool)
    if num_det == 0 or num_gt == 0:
        return tp
    unmatched = np.ones((len(thresholds), num_gt), dtype=bool)
    lowest = float(thresholds.min())
    for d in range(num_det):
        row = iou[d]
        if row.max() < lowest:  # the common case at a low score threshold: no overlap at all
            continue
        allowed = unmatched & (row[None, :] >= thresholds[:, None])
        candidates = np.where(allowed, row[None, :], -np.inf)
        best = num_gt - 1 - np.argmax(candidates[:, ::-1], axis=1)  # last index of the maximum
        hit = allowed.any(axis=1)
        tp[hit, d] = True
        unmatched[np.flatnonzero(hit), best[hit]] = False
    return tp


def _cumulative_pr(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank by score and accumulate: (sorted scores (D,), recall (T, D), precision (T, D))."""
    order = np.argsort(-scores, kind="mergesort")  # stable, as pycocotools' accumulate()
    tp = tp[:, order]
    tp_sum = np.cumsum(tp, axis=1, dtype=np.float64)
    fp_sum = np.cumsum(~tp, axis=1, dtype=np.float64)
    recall = tp_sum / num_gt if num_gt else np.zeros_like(tp_sum)
    precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
    return scores[order], recall, precision


def _interpolated_ap(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """COCO's 101-point AP for each row of ``recall``/``precision`` ``(T, D)`` -> ``(T,)``."""
    ap = np.zeros(len(recall))
    for t, (rc, pr) in enumerate(zip(recall, precision)):
        if not len(rc):
            continue
        envelope = np.maximum.accumulate(pr[::-1])[::-1]  # precision made non-increasing
        index = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
        ok = index < len(rc)
        ap[t] = envelope[index[ok]].sum() / len(RECALL_THRESHOLDS)
    return ap


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> np.ndarray:
    """AP of a pooled detection list at each threshold.

    Args:
        scores: ``(D,)`` detection scores, any order.
        tp: ``(T, D)`` bool true-positive flags for those detections.
        num_gt: ground-truth boxes the detections compete for.

    Returns:
        ``(T,)`` AP with COCO's 101-point interpolation; NaN when ``num_gt`` is 0.
    """
    if num_gt == 0:
        return np.full(len(tp), np.nan)
    _, recall, precision = _cumulative_pr(np.asarray(scores, dtype=np.float64), np.asarray(tp, dtype=bool), num_gt)
    return _interpolated_ap(recall, precision)


@dataclass(frozen=True)
class ImageMatches:
    """One image's detections in descending score order and their matches.

    Attributes:
        scores: ``(D,)`` float64, descending.
        classes: ``(D,)`` int64 detection classes.
        tp_any: ``(T, D)`` bool, class-agnostic match at each of IOU_THRESHOLDS.
        tp_same: ``(T, D)`` bool, class-aware match.
        gt_classes: ``(G,)`` int64 ground-truth classes.
    """

    scores: np.ndarray
    classes: np.ndarray
    tp_any: np.ndarray
    tp_same: np.ndarray
    gt_classes: np.ndarray


def match_image(gt: GroundTruth, pred: Prediction, index: int = 0) -> ImageMatches:
    """Match one image's predictions to its ground truth, class-agnostic and class-aware."""
    gt_boxes, gt_classes = _ground_truth(gt, index)
    boxes, scores, classes = _prediction(pred, index)
    order = np.argsort(-scores, kind="mergesort")
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    iou = box_iou(boxes, gt_boxes)
    same = np.where(classes[:, None] == gt_classes[None, :], iou, -1.0)
    return ImageMatches(scores, classes, match_detections(iou), match_detections(same), gt_classes)


@dataclass(frozen=True)
class PRCurve:
    """A precision/recall curve at one IoU threshold.

    Attributes:
        label: what it covers, e.g. ``all classes`` or a class name.
        recall: ``(D,)`` recall after each detection in descending score order.
        precision: ``(D,)`` precision there (raw, not interpolated).
        scores: ``(D,)`` the score of each detection: the threshold that gives that point.
        ap: 101-point interpolated AP of the curve (NaN without ground truth).
        num_gt: ground-truth boxes.
        iou: the IoU threshold.
    """

    label: str
    recall: np.ndarray
    precision: np.ndarray
    scores: np.ndarray
    ap: float
    num_gt: int
    iou: float


def _iou_index(iou: float) -> int:
    found = np.flatnonzero(np.isclose(IOU_THRESHOLDS, iou))
    if not found.size:
        raise ValueError(f"IoU {iou} is not one of the COCO thresholds 0.50, 0.55, ..., 0.95")
    return int(found[0])


class Evaluation:
    """Matches computed once per image, from which every numpy metric is read.

    Args:
        ground_truth: per image ``(boxes (N, 4) xyxy pixels, classes (N,))``.
        predictions: per image ``(boxes (D, 4) xyxy pixels, scores (D,), classes (D,))``.
    """

    def __init__(self, ground_truth: Sequence[GroundTruth], predictions: Sequence[Prediction]):
        _check_lengths(ground_truth, predictions)
        self.images = [match_image(g, p, i) for i, (g, p) in enumerate(zip(ground_truth, predictions))]

    def _pooled(self, class_id: int | None) -> tuple[np.ndarray, np.ndarray, int]:
        """(scores (D,), tp (T, D), num_gt) over all images: class-agnostic, or one class's."""
        if class_id is None:
            parts = [(m.scores, m.tp_any) for m in self.images]
            num_gt = sum(len(m.gt_classes) for m in self.images)
        else:
            keep = [m.classes == class_id for m in self.images]
            parts = [(m.scores[k], m.tp_same[:, k]) for m, k in zip(self.images, keep)]
            num_gt = sum(int((m.gt_classes == class_id).sum()) for m in self.images)
        scores = np.concatenate([s for s, _ in parts]) if parts else np.zeros(0)
        tp = np.concatenate([t for _, t in parts], axis=1) if parts else np.zeros((len(IOU_THRESHOLDS), 0), bool)
        return scores, tp, num_gt

    def global_ap(self) -> dict[str, float]:
        """``global_ap50`` (IoU 0.5) and ``global_ap`` (mean over IoU .50:.95); NaN without ground truth."""
        ap = average_precision(*self._pooled(None))
        return {"global_ap50": float(ap[0]), "global_ap": float(ap.mean())}

    def class_ap(self, class_id: int) -> np.ndarray:
        """``(T,)`` AP of one class at each IoU threshold (pycocotools' per-class AP, uncapped)."""
        return average_precision(*self._pooled(class_id))

    def per_image_ap(self) -> dict[str, float | int]:
        """``per_image_ap50``, ``per_image_ap`` (.50:.95), ``per_image_images`` (images averaged)
        and ``per_image_excluded`` (images without ground truth, left out)."""
        values = [average_precision(m.scores, m.tp_same, len(m.gt_classes)) for m in self.images if len(m.gt_classes)]
        excluded = len(self.images) - len(values)
        if not values:
            return {"per_image_ap50": math.nan, "per_image_ap": math.nan, "per_image_images": 0,
                    "per_image_excluded": excluded}
        stacked = np.stack(values)  # (images, T)
        return {"per_image_ap50": float(stacked[:, 0].mean()), "per_image_ap": float(stacked.mean()),
                "per_image_images": len(values), "per_image_excluded": excluded}

    def pr_curve(self, class_id: int | None = None, iou: float = 0.5, label: str | None = None) -> PRCurve:
        """The precision/recall curve of all detections class-agnostically (``class_id=None``,
        the global AP's curve) or of one class, at an IoU threshold from IOU_THRESHOLDS."""
        t = _iou_index(iou)
        scores, tp, num_gt = self._pooled(class_id)
        sorted_scores, recall, precision = _cumulative_pr(scores, tp[t:t + 1], num_gt)
        ap = float(average_precision(scores, tp[t:t + 1], num_gt)[0])
        name = label if label is not None else ("all classes" if class_id is None else f"class {class_id}")
        return PRCurve(name, recall[0], precision[0], sorted_scores, ap, num_gt, float(IOU_THRESHOLDS[t]))


def global_ap(ground_truth: Sequence[GroundTruth], predictions: Sequence[Prediction]) -> dict[str, float]:
    """Class-agnostic AP over all detections; see the module docstring."""
    return Evaluation(ground_truth, predictions).global_ap()


def per_image_ap(ground_truth: Sequence[GroundTruth], predictions: Sequence[Prediction]) -> dict[str, float | int]:
    """Class-aware AP within each image, averaged over images with ground truth; see the module docstring."""
    return Evaluation(ground_truth, predictions).per_image_ap()


def precision_recall_curve(ground_truth: Sequence[GroundTruth], predictions: Sequence[Prediction], *,
                           class_id: int | None = None, iou: float = 0.5) -> PRCurve:
    """Precision/recall curve: class-agnostic (``class_id=None``) or of one class."""
    return Evaluation(ground_truth, predictions).pr_curve(class_id, iou)


# ---- pycocotools ---------------------------------------------------------------------------

def _xywh(boxes: np.ndarray) -> list[list[float]]:
    return box_convert(boxes, "xyxy", "xywh").tolist()


def _coco_objects(ground_truth, predictions, image_sizes, num_classes):
    """In-memory pycocotools ground truth and results. Image ids are 1..N, category ids 1..C."""
    from pycocotools.coco import COCO

    images = [{"id": i + 1, "width": int(w), "height": int(h)} for i, (w, h) in enumerate(image_sizes)]
    categories = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    annotations, results = [], []
    for i, (gt, pred) in enumerate(zip(ground_truth, predictions)):
        boxes, classes = _ground_truth(gt, i)
        d_boxes, scores, d_classes = _prediction(pred, i)
        for cls in np.concatenate([classes, d_classes]):
            if not 0 <= cls < num_classes:
                raise ValueError(f"image {i}: class id {cls} outside 0..{num_classes - 1}")
        for box, cls in zip(_xywh(boxes), classes.tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cls + 1,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        results += [{"image_id": i + 1, "category_id": cls + 1, "bbox": box, "score": score}
                    for box, score, cls in zip(_xywh(d_boxes), scores.tolist(), d_classes.tolist())]
    gt_coco = COCO()
    gt_coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    gt_coco.createIndex()
    if results:
        dt_coco = gt_coco.loadRes(results)
    else:  # loadRes cannot take an empty list; COCOeval handles an empty result set
        dt_coco = COCO()
        dt_coco.dataset = {"images": list(images), "categories": list(categories), "annotations": []}
        dt_coco.createIndex()
    return gt_coco, dt_coco


def _nan_if_undefined(value: float) -> float:
    """pycocotools marks a metric without ground truth -1; NaN says so without looking like a score."""
    return math.nan if value < 0 else float(value)


def coco_metrics(ground_truth: Sequence[GroundTruth], predictions: Sequence[Prediction],
                 image_sizes: Sequence[tuple[int, int]], num_classes: int) -> dict[str, Any]:
    """COCO box metrics computed by pycocotools.

    Args:
        ground_truth: per image ``(boxes (N, 4) xyxy pixels, classes (N,))``.
        predictions: per image ``(boxes (D, 4) xyxy pixels, scores (D,), classes (D,))``.
        image_sizes: per image ``(width, height)``.
        num_classes: C; class ids are 0..C-1 (category ids 1..C inside pycocotools).

    Returns:
        The 12 values of ``COCOeval.summarize`` under COCO_STAT_KEYS (``map``, ``ap50``, ``ap75``,
        ``ap_small``, ..., ``ar100``, ...), plus ``per_class``: a list of C dicts with ``ap``,
        ``ap50``. A value without ground truth (an empty area range, a class never labelled) is
        NaN; with ground truth but no predictions it is 0.

    Raises:
        YoloV3TrtError: pycocotools is not installed.
    """
    _check_lengths(ground_truth, predictions)
    if len(image_sizes) != len(ground_truth):
        raise ValueError(f"{len(image_sizes)} image sizes for {len(ground_truth)} images")
    try:
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise YoloV3TrtError("evaluation needs pycocotools: pip install 'yolov3_trt[train]' "
                             "(or pip install pycocotools)") from None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools reports progress with print()
        gt_coco, dt_coco = _coco_objects(ground_truth, predictions, image_sizes, num_classes)
        evaluator = COCOeval(gt_coco, dt_coco, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics: dict[str, Any] = {key: _nan_if_undefined(v) for key, v in zip(COCO_STAT_KEYS, evaluator.stats)}
    precision = evaluator.eval["precision"]  # (T, R, K, area ranges, max dets); area "all", 100 dets
    per_class = []
    for k in range(num_classes):
        p = precision[:, :, k, 0, -1]  # (T, R): -1 throughout for a class without ground truth
        labelled = bool((p > -1).all())
        per_class.append({"ap": float(p.mean()) if labelled else math.nan,
                          "ap50": float(p[0].mean()) if labelled else math.nan})
    metrics["per_class"] = per_class
    return metrics
