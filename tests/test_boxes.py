"""yolov3_trt.boxes: formats, areas, IoU, and the one answer for an empty union."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov3_trt.anchors import shape_iou
from yolov3_trt.boxes import FORMATS, box_area, box_convert, box_iou, paired_iou, wh_iou
from yolov3_trt.evaluate import box_iou as evaluate_box_iou
from yolov3_trt.postprocess import nms
from yolov3_trt.train.loss import box_iou_cxcywh


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """xyxy boxes, a few of them empty (zero width or height) or points."""
    corner = rng.uniform(0, 50, (n, 2))
    size = rng.uniform(0, 30, (n, 2))
    size[rng.random(n) < 0.1, 0] = 0
    size[rng.random(n) < 0.1] = 0
    return np.concatenate([corner, corner + size], axis=1)


def test_convert_round_trips_and_known_values() -> None:
    xyxy = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_array_equal(box_convert(xyxy, "xyxy", "cxcywh"), [[20, 40, 20, 40]])
    np.testing.assert_array_equal(box_convert(xyxy, "xyxy", "xywh"), [[10, 20, 20, 40]])
    np.testing.assert_array_equal(box_convert([[20, 40, 20, 40]], "cxcywh", "xyxy"), xyxy)
    np.testing.assert_array_equal(box_convert([[10, 20, 20, 40]], "xywh", "xyxy"), xyxy)
    boxes = random_boxes(np.random.default_rng(0), 50)
    for fmt in FORMATS:
        np.testing.assert_allclose(box_convert(box_convert(boxes, "xyxy", fmt), fmt, "xyxy"), boxes, atol=1e-12)
    assert box_convert(np.zeros((0, 4), np.float32), "xyxy", "cxcywh").dtype == np.float32
    assert box_convert([[1, 2, 3, 4]], "xyxy", "xyxy").dtype == np.float64


def test_convert_refuses_unknown_formats_and_shapes() -> None:
    with pytest.raises(ValueError, match="unknown box format 'yxyx'"):
        box_convert(np.zeros((1, 4)), "yxyx", "xyxy")
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        box_convert(np.zeros((2, 3)), "xyxy", "cxcywh")


def test_area_and_iou_values() -> None:
    np.testing.assert_array_equal(box_area([[0, 0, 10, 5], [3, 3, 3, 9]]), [50, 0])
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [10, 0, 20, 10]])
    np.testing.assert_allclose(iou, [[1.0, 1 / 3, 0.0, 0.0]])
    assert box_iou(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert paired_iou([0, 0, 4, 4], [2, 2, 6, 6]) == pytest.approx(4 / 28)


def test_empty_union_is_zero_everywhere() -> None:
    point = np.array([[5.0, 5.0, 5.0, 5.0]])
    line = np.array([[0.0, 0.0, 10.0, 0.0]])
    for a, b in ((point, point), (line, line), (point, line)):
        with np.errstate(all="raise"):  # no 0/0 warning either
            assert box_iou(a, b).tolist() == [[0.0]]
        assert paired_iou(a[0], b[0]) == 0.0
    assert wh_iou([[0, 0]], [[0, 0]]).tolist() == [[0.0]]
    assert shape_iou(np.zeros((1, 2)), np.zeros((1, 2))).tolist() == [[0.0]]
    assert box_iou_cxcywh(torch.tensor([[5.0, 5.0, 0.0, 0.0]]),
                          torch.tensor([[5.0, 5.0, 0.0, 0.0]])).tolist() == [[0.0]]
    # A NaN coordinate makes the union undefined: 0 too, not NaN.
    assert box_iou([[np.nan, 0, 1, 1]], [[0, 0, 1, 1]]).tolist() == [[0.0]]


def test_empty_boxes_never_suppress_in_nms() -> None:
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10]], np.float32)
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.0), [0, 1, 2])


def test_inverted_boxes_share_nothing() -> None:
    inverted = np.array([[10.0, 10.0, 0.0, 0.0]])  # x2 < x1, y2 < y1: positive area by the formula
    assert box_iou(inverted, [[0, 0, 10, 10]]).tolist() == [[0.0]]


def test_pairwise_and_matrix_agree_bit_for_bit() -> None:
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 40), random_boxes(rng, 30)
    matrix = box_iou(a, b)
    for i in range(len(a)):
        np.testing.assert_array_equal(paired_iou(a[i], b), matrix[i])
    assert np.all((matrix >= 0) & (matrix <= 1))


def test_wh_iou_is_box_iou_of_centred_shapes() -> None:
    rng = np.random.default_rng(2)
    wh, anchors = rng.uniform(0, 40, (20, 2)), rng.uniform(1, 40, (5, 2))
    centred = box_convert(np.concatenate([np.zeros_like(wh), wh], axis=1), "cxcywh", "xyxy")
    centred_anchors = box_convert(np.concatenate([np.zeros_like(anchors), anchors], axis=1), "cxcywh", "xyxy")
    np.testing.assert_allclose(wh_iou(wh, anchors), box_iou(centred, centred_anchors), rtol=1e-12)
    np.testing.assert_array_equal(shape_iou(wh, anchors), wh_iou(wh, anchors))


def test_implementations_agree() -> None:
    """Every IoU the package computes: numpy (matching, NMS), the torch twin of the loss, and
    torchvision's on non-empty boxes. Fails when one of them changes its formula."""
    import torchvision

    rng = np.random.default_rng(3)
    a, b = random_boxes(rng, 60), random_boxes(rng, 50)
    ours = box_iou(a, b)
    np.testing.assert_array_equal(evaluate_box_iou(a, b), ours)
    twin = box_iou_cxcywh(torch.from_numpy(box_convert(a, "xyxy", "cxcywh")),
                          torch.from_numpy(box_convert(b, "xyxy", "cxcywh"))).numpy()
    np.testing.assert_allclose(twin, ours, atol=1e-12)
    full = (box_area(a) > 0)[:, None] | (box_area(b) > 0)[None, :]
    reference = torchvision.ops.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(ours[full], reference[full], atol=1e-12)
    assert np.all(ours[~full] == 0) and np.all(np.isnan(reference[~full]))


def test_nms_decides_with_boxes_iou() -> None:
    # Two boxes at exactly the threshold survive (IoU > t suppresses), just above it do not.
    a, b = np.array([0.0, 0.0, 10.0, 10.0]), np.array([5.0, 0.0, 15.0, 10.0])
    t = float(paired_iou(a, b))
    boxes = np.stack([a, b])
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8]), t), [0, 1])
    np.testing.assert_array_equal(nms(boxes, np.array([0.9, 0.8]), np.nextafter(t, 0)), [0])
