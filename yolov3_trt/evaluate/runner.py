"""Run a Detector over a labelled dataset and score it (shared by the CLI and training)."""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from ..preprocess import read_image
from .metrics import Evaluation, coco_metrics

logger = logging.getLogger(__name__)
# The Detector's thresholds when AP is measured (evaluate, the INT8 budget): mAP integrates the
# whole PR curve, so low-score detections are kept (COCO practice), at most COCO's maxDets.
EVAL_CONF = 0.005
EVAL_MAX_DET = 100


def run_detector(detector, samples: Sequence, batch: int = 8, progress: bool = True):
    """Ground truth, predictions and image sizes per sample, and the seconds spent detecting."""
    ground_truth, predictions, sizes = [], [], []
    seconds = 0.0
    warned = False
    with tqdm(total=len(samples), unit="img", desc="evaluate", disable=None if progress else True) as bar:
        for start in range(0, len(samples), batch):
            chunk = samples[start:start + batch]
            images = [read_image(s.image) for s in chunk]
            began = time.perf_counter()
            found = detector.detect_batch(images)
            seconds += time.perf_counter() - began
            for sample, image, dets in zip(chunk, images, found):
                height, width = image.shape[:2]
                if not warned and sample.width and sample.height and (sample.width, sample.height) != (width, height):
                    logger.warning("%s: labelled as %dx%d but the image is %dx%d; boxes follow the image",
                                   sample.image, sample.width, sample.height, width, height)
                    warned = True
                ground_truth.append((sample.boxes_xyxy(width, height), np.asarray(sample.classes)))
                predictions.append((dets.boxes, dets.scores, dets.class_ids))
                sizes.append((width, height))
            bar.update(len(chunk))
    return ground_truth, predictions, sizes, seconds


def evaluate_detector(detector, dataset, batch: int = 8, progress: bool = True) -> dict[str, Any]:
    """COCO metrics (``mAP``, ``AP50``, ...), global AP and per-image AP of ``detector`` on ``dataset``."""
    ground_truth, predictions, sizes, _ = run_detector(detector, dataset.samples, batch, progress)
    coco = coco_metrics(ground_truth, predictions, sizes, len(dataset.names))
    coco.pop("per_class")
    evaluation = Evaluation(ground_truth, predictions)
    return {**coco, **evaluation.global_ap(), **evaluation.per_image_ap()}
