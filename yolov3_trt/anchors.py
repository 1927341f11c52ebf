"""``python -m yolov3_trt.anchors``: k-means anchors (1 - IoU distance) for a dataset and size.

As in the YOLOv2/v3 papers: cluster the labelled box shapes (w, h, in input pixels after
letterboxing to --size) with k-means whose distance is 1 - IoU of centred boxes, so large boxes
don't dominate as they would with Euclidean distance. Prints the anchors in cfg syntax, sorted
by area (the order Darknet's masks expect: small to large), with the mean best IoU they reach.
"""
from __future__ import annotations

import sys
from typing import Sequence

import numpy as np

from .boxes import wh_iou
from .cli.common import UsageError, make_parser, run
from .cli.flags import add_flag

shape_iou = wh_iou  # (N, K) IoU of centred (w, h) boxes with centred (w, h) anchors: yolov3_trt.boxes


def kmeans_anchors(wh: np.ndarray, k: int, seed: int = 0, iterations: int = 300) -> tuple[np.ndarray, float]:
    """``k`` anchors (K, 2) sorted by area and the mean best IoU of ``wh`` (N, 2) with them.

    k-means++ seeding on the 1 - IoU distance, then Lloyd iterations with the median (robust to
    outliers) as each cluster's centre, until the assignment stops changing.
    """
    wh = np.asarray(wh, dtype=np.float64)
    if len(wh) < k:
        raise UsageError(f"{len(wh)} boxes cannot make {k} anchors")
    rng = np.random.default_rng(seed)
    centres = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        distance = 1 - shape_iou(wh, np.array(centres)).max(axis=1)
        centres.append(wh[rng.choice(len(wh), p=distance ** 2 / (distance ** 2).sum())])
    anchors = np.array(centres)
    assignment = None
    for _ in range(iterations):
        new = shape_iou(wh, anchors).argmax(axis=1)
        if assignment is not None and np.array_equal(new, assignment):
            break
        assignment = new
        for j in range(k):
            members = wh[assignment == j]
            if len(members):
                anchors[j] = np.median(members, axis=0)
    anchors = anchors[np.argsort(anchors.prod(axis=1))]
    return anchors, float(shape_iou(wh, anchors).max(axis=1).mean())


def letterboxed_shapes(dataset, size: tuple[int, int]) -> np.ndarray:
    """Box (w, h) in input pixels after Darknet's letterbox of each image to ``size``."""
    from .preprocess import read_image

    out = []
    for sample in dataset.samples:
        if not len(sample.boxes):
            continue
        width, height = sample.width, sample.height
        if width is None or height is None:
            height, width = read_image(sample.image).shape[:2]
        scale = min(size[0] / width, size[1] / height)
        out.append(sample.boxes[:, 2:4] * np.array([width, height]) * scale)
    return np.concatenate(out) if out else np.zeros((0, 2))


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser("python -m yolov3_trt.anchors", __doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("data", metavar="DATA", help="YOLO folder or list file, or COCO JSON")
    add_flag(p, "--names", default_text="found beside the data")
    add_flag(p, "--size", default=(416, 416), default_text="416")
    add_flag(p, "--num", default=9)
    add_flag(p, "--seed", default=0)
    args = p.parse_args(argv)
    from .darknet.builtin import format_anchors
    from .data.dataset import load_dataset

    wh = letterboxed_shapes(load_dataset(args.data, args.names), args.size)
    anchors, iou = kmeans_anchors(wh, args.num, args.seed)
    print(f"# {len(wh)} boxes at {args.size[0]}x{args.size[1]}: mean best IoU {iou:.3f}")
    print(f"anchors = {format_anchors([tuple(np.round(a).astype(int)) for a in anchors])}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
