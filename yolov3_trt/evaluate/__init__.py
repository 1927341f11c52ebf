"""Accuracy on a labelled set: COCO mAP (pycocotools) and the YOLOv3 paper's global and per-image AP.

``python -m yolov3_trt.evaluate`` is the command line; :mod:`.metrics` holds the definitions.
"""
from __future__ import annotations

from .metrics import (
    COCO_STAT_KEYS,
    IOU_THRESHOLDS,
    RECALL_THRESHOLDS,
    Evaluation,
    PRCurve,
    average_precision,
    box_iou,
    coco_metrics,
    global_ap,
    match_detections,
    per_image_ap,
    precision_recall_curve,
)
from .plots import plot_pr_curves

__all__ = ["COCO_STAT_KEYS", "IOU_THRESHOLDS", "RECALL_THRESHOLDS", "Evaluation", "PRCurve", "average_precision",
           "box_iou", "coco_metrics", "global_ap", "match_detections", "per_image_ap", "plot_pr_curves",
           "precision_recall_curve"]
