"""Metrics against hand-computed APs and against pycocotools itself (the oracle nobody here wrote)."""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from yolov3_trt.evaluate import (
    Evaluation,
    box_iou,
    coco_metrics,
    global_ap,
    match_detections,
    per_image_ap,
    plot_pr_curves,
    precision_recall_curve,
)

pytest.importorskip("pycocotools")

SIZE = (200, 200)
G1, G2, G3 = [10, 10, 50, 50], [100, 100, 150, 160], [20, 30, 80, 90]
FAR = [150, 0, 190, 40]  # overlaps nothing


def _gt(boxes, classes):
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64)


def _pred(rows):
    """rows of (box, score, class)."""
    if not rows:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    boxes, scores, classes = zip(*rows)
    return np.array(boxes, np.float32), np.array(scores, np.float32), np.array(classes, np.int32)


# One class, 2 images, 3 boxes. Ranked: TP .9, FP .8, TP .7, TP .6, FP .5 -> recall 1/3, 1/3, 2/3, 1, 1,
# precision 1, .5, .667, .75, .6; interpolated: 1 up to recall 1/3 (34 of the 101 points), .75 after (67).
ONE_CLASS_GT = [_gt([G1, G2], [0, 0]), _gt([G3], [0])]
ONE_CLASS_PRED = [_pred([(G1, .9, 0), (FAR, .8, 0), (G2, .6, 0)]), _pred([(G3, .7, 0), (FAR, .5, 0)])]
ONE_CLASS_AP = (34 * 1 + 67 * 0.75) / 101
# per image: A ranks TP, FP, TP over 2 boxes -> 1 up to recall .5 (51 points), 2/3 after (50); B gets 1
ONE_CLASS_PER_IMAGE = ((51 + 50 * 2 / 3) / 101 + 1) / 2

# Two classes, 3 images. The .8 detection sits on a class-1 box but says class 0.
TWO_CLASS_GT = [_gt([G1, G2], [0, 1]), _gt([G3], [0]), _gt([], [])]
TWO_CLASS_PRED = [_pred([(FAR, .95, 1), (G1, .9, 0), (G2, .8, 0)]), _pred([(G3, .7, 0)]), _pred([(G1, .3, 0)])]


def _direct_pycocotools(tmp_path, gt, pred, num_classes):
    """The standard pycocotools run from JSON files, as a user of the COCO API would write it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for i, ((boxes, classes), (d_boxes, scores, d_classes)) in enumerate(zip(gt, pred)):
        images.append({"id": i + 1, "width": SIZE[0], "height": SIZE[1], "file_name": f"{i}.jpg"})
        for b, c in zip(boxes.tolist(), classes.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1,
                                "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, s, c in zip(d_boxes.tolist(), scores.tolist(), d_classes.tolist()):
            results.append({"image_id": i + 1, "category_id": c + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                            "score": s})
    (tmp_path / "gt.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": c + 1, "name": f"c{c}"} for c in range(num_classes)]}))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "gt.json"))
        evaluator = COCOeval(coco, coco.loadRes(str(tmp_path / "dt.json")), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)


def test_matching_takes_the_best_unmatched_box_per_threshold():
    # detection 0 overlaps box 0 at .6 and box 1 at .8; detection 1 overlaps box 1 at .7
    iou = np.array([[0.6, 0.8], [0.0, 0.7]])
    tp = match_detections(iou, np.array([0.5, 0.75]))
    # at .5: det 0 takes box 1 (higher IoU), det 1 then has nothing >= .5 left -> FP
    # at .75: det 0 takes box 1, det 1 (0.7) misses
    np.testing.assert_array_equal(tp, [[True, False], [True, False]])
    assert not match_detections(np.array([[0.4]]), np.array([0.5])).any()


def test_coco_ap_matches_hand_value_and_direct_pycocotools(tmp_path):
    sizes = [SIZE, SIZE]
    metrics = coco_metrics(ONE_CLASS_GT, ONE_CLASS_PRED, sizes, 1)
    assert metrics["ap50"] == pytest.approx(ONE_CLASS_AP, abs=1e-12)
    assert metrics["ap75"] == pytest.approx(ONE_CLASS_AP, abs=1e-12)  # TPs are exact boxes
    assert metrics["map"] == pytest.approx(ONE_CLASS_AP, abs=1e-12)
    assert metrics["ar100"] == pytest.approx(1.0)
    assert metrics["per_class"][0]["ap50"] == pytest.approx(ONE_CLASS_AP, abs=1e-12)
    direct = _direct_pycocotools(tmp_path, ONE_CLASS_GT, ONE_CLASS_PRED, 1)
    np.testing.assert_allclose([metrics[k] if not np.isnan(metrics[k]) else -1 for k in
                                ("map", "ap50", "ap75", "ap_small", "ap_medium", "ap_large")], direct[:6], atol=1e-12)


def test_one_class_global_and_per_image_ap_by_hand():
    assert global_ap(ONE_CLASS_GT, ONE_CLASS_PRED)["global_ap50"] == pytest.approx(ONE_CLASS_AP, abs=1e-12)
    result = per_image_ap(ONE_CLASS_GT, ONE_CLASS_PRED)
    assert result["per_image_ap50"] == pytest.approx(ONE_CLASS_PER_IMAGE, abs=1e-12)
    assert (result["per_image_images"], result["per_image_excluded"]) == (2, 0)


def test_wrong_class_counts_for_global_ap_only(tmp_path):
    evaluation = Evaluation(TWO_CLASS_GT, TWO_CLASS_PRED)
    # global: FP .95, TP .9, TP .8 (class ignored), TP .7, FP .3 over 3 boxes: the envelope is .75 everywhere
    glob = evaluation.global_ap()
    assert glob["global_ap50"] == pytest.approx(0.75, abs=1e-12)
    assert glob["global_ap"] == pytest.approx(0.75, abs=1e-12)
    # per image, class-aware: A ranks FP, TP, FP over 2 boxes -> .5 up to recall .5 (51 points), then 0;
    # B is perfect; C has no labels and is left out
    per_image = evaluation.per_image_ap()
    assert per_image["per_image_ap50"] == pytest.approx((51 * 0.5 / 101 + 1) / 2, abs=1e-12)
    assert (per_image["per_image_images"], per_image["per_image_excluded"]) == (2, 1)
    # COCO, class-aware: class 0 ranks TP .9, FP .8, TP .7, FP .3 over 2 boxes; class 1 finds nothing
    class0 = (51 + 50 * 2 / 3) / 101
    coco = coco_metrics(TWO_CLASS_GT, TWO_CLASS_PRED, [SIZE] * 3, 2)
    assert coco["ap50"] == pytest.approx((class0 + 0) / 2, abs=1e-12)
    assert [c["ap50"] for c in coco["per_class"]] == pytest.approx([class0, 0.0], abs=1e-12)
    assert evaluation.class_ap(0)[0] == pytest.approx(class0, abs=1e-12)
    direct = _direct_pycocotools(tmp_path, TWO_CLASS_GT, TWO_CLASS_PRED, 2)
    assert coco["ap50"] == pytest.approx(direct[1], abs=1e-12)


def test_perfect_predictions_score_one():
    pred = [_pred([(b, 0.9, c) for b, c in zip(boxes.tolist(), classes.tolist())]) for boxes, classes in TWO_CLASS_GT]
    metrics = coco_metrics(TWO_CLASS_GT, pred, [SIZE] * 3, 2)
    assert metrics["map"] == metrics["ap50"] == metrics["ap75"] == pytest.approx(1.0)
    evaluation = Evaluation(TWO_CLASS_GT, pred)
    assert evaluation.global_ap() == pytest.approx({"global_ap50": 1.0, "global_ap": 1.0})
    assert evaluation.per_image_ap()["per_image_ap"] == pytest.approx(1.0)


def test_no_predictions_score_zero_without_raising():
    pred = [_pred([]) for _ in TWO_CLASS_GT]
    metrics = coco_metrics(TWO_CLASS_GT, pred, [SIZE] * 3, 2)
    assert metrics["map"] == metrics["ap50"] == metrics["ap75"] == metrics["ar100"] == 0.0
    assert np.isnan(metrics["ap_small"])  # no small box is labelled: undefined, not 0
    assert global_ap(TWO_CLASS_GT, pred) == {"global_ap50": 0.0, "global_ap": 0.0}
    assert per_image_ap(TWO_CLASS_GT, pred)["per_image_ap"] == 0.0
    curve = precision_recall_curve(TWO_CLASS_GT, pred)
    assert len(curve.recall) == 0 and curve.ap == 0.0 and curve.num_gt == 3


def test_no_ground_truth_is_undefined():
    gt = [_gt([], [])]
    pred = [_pred([(G1, .9, 0)])]
    assert np.isnan(coco_metrics(gt, pred, [SIZE], 1)["map"])
    assert np.isnan(global_ap(gt, pred)["global_ap50"])
    assert per_image_ap(gt, pred)["per_image_excluded"] == 1


def _random_set(seed, images=25, classes=3, single_class_images=False):
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for i in range(images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 150, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 50, (n, 2))], axis=1)
        cls = np.full(n, i % classes) if single_class_images else rng.integers(0, classes, n)
        gt.append((boxes.astype(np.float32), cls))
        # detections: jittered copies of some boxes (some with a wrong class) and random ones
        keep = boxes[rng.random(n) < 0.8]
        jitter = keep + rng.normal(0, 4, keep.shape)
        # keep x1 <= x2 (pycocotools ignores unmatched boxes of negative area; a Detector makes none)
        jitter = np.concatenate([np.minimum(jitter[:, :2], jitter[:, 2:]), np.maximum(jitter[:, :2], jitter[:, 2:])], 1)
        m = int(rng.integers(0, 5))
        xy = rng.uniform(0, 150, (m, 2))
        noise = np.concatenate([xy, xy + rng.uniform(5, 50, (m, 2))], axis=1)
        d_boxes = np.concatenate([jitter, noise]).astype(np.float32)
        if single_class_images:
            d_cls = np.full(len(d_boxes), i % classes)
        else:
            d_cls = np.concatenate([cls[:len(keep)] if rng.random() < 0.7 else rng.integers(0, classes, len(keep)),
                                    rng.integers(0, classes, m)])
        pred.append((d_boxes, rng.random(len(d_boxes)).astype(np.float32), d_cls.astype(np.int32)))
    return gt, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_matching_reproduces_pycocotools(seed):
    gt, pred = _random_set(seed)
    sizes = [SIZE] * len(gt)
    coco = coco_metrics(gt, pred, sizes, 3)
    evaluation = Evaluation(gt, pred)
    for k in range(3):
        ap = evaluation.class_ap(k)
        assert ap[0] == pytest.approx(coco["per_class"][k]["ap50"], abs=1e-12)
        assert ap.mean() == pytest.approx(coco["per_class"][k]["ap"], abs=1e-12)
    # global AP is pycocotools' AP with every label made one class
    one = coco_metrics([(b, np.zeros_like(c)) for b, c in gt], [(b, s, np.zeros_like(c)) for b, s, c in pred], sizes, 1)
    glob = evaluation.global_ap()
    assert glob["global_ap50"] == pytest.approx(one["ap50"], abs=1e-12)
    assert glob["global_ap"] == pytest.approx(one["map"], abs=1e-12)


def test_per_image_ap_is_pycocotools_per_image_when_each_image_has_one_class():
    gt, pred = _random_set(5, images=12, single_class_images=True)
    expected = [coco_metrics([g], [p], [SIZE], 3)["ap50"] for g, p in zip(gt, pred) if len(g[1])]
    result = per_image_ap(gt, pred)
    assert result["per_image_images"] == len(expected)
    assert result["per_image_ap50"] == pytest.approx(np.mean(expected), abs=1e-12)


def test_pr_curve_and_plot(tmp_path):
    curve = precision_recall_curve(ONE_CLASS_GT, ONE_CLASS_PRED)
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(curve.precision, [1, 0.5, 2 / 3, 0.75, 0.6], atol=1e-12)
    np.testing.assert_allclose(curve.scores, [0.9, 0.8, 0.7, 0.6, 0.5], rtol=1e-6)
    assert curve.ap == pytest.approx(ONE_CLASS_AP) and curve.iou == 0.5
    with pytest.raises(ValueError, match="not one of the COCO thresholds"):
        precision_recall_curve(ONE_CLASS_GT, ONE_CLASS_PRED, iou=0.3)
    evaluation = Evaluation(TWO_CLASS_GT, TWO_CLASS_PRED)
    curves = [evaluation.pr_curve(None, label="all"), evaluation.pr_curve(0, label="dog"),
              evaluation.pr_curve(1, iou=0.75, label="cat")]
    path = plot_pr_curves(curves, tmp_path / "sub" / "pr.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["pr.png"]  # no temporary left behind


def test_mismatched_inputs_raise():
    with pytest.raises(ValueError, match="2 images of ground truth but 1"):
        global_ap(ONE_CLASS_GT, ONE_CLASS_PRED[:1])
    with pytest.raises(ValueError, match="class id 1 outside 0..0"):
        coco_metrics(TWO_CLASS_GT[:1], TWO_CLASS_PRED[:1], [SIZE], 1)
