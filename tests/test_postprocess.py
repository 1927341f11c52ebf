"""Tests for yolov3_trt.postprocess: decode against the paper's equations, NMS against torchvision."""
from __future__ import annotations

import math

import numpy as np
import pytest

from yolov3_trt.darknet.layers import YoloHead
from yolov3_trt.postprocess import (DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, batched_nms, decode, nms,
                                    postprocess, sigmoid)

NET = (128, 96)  # (net_w, net_h)
HEADS = (YoloHead(layer=10, anchors=((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)), classes=4),
         YoloHead(layer=20, anchors=((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)), classes=4))
GRIDS = ((3, 4), (6, 8))  # (H, W) per head: strides 32 and 16 at 128x96


def reference_decode(outputs, heads, input_size):
    """Per-element loops over the paper's equations, in Darknet's candidate order."""
    net_w, net_h = input_size
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    batch = outputs[0].shape[0]
    boxes, obj, cls = [[] for _ in range(batch)], [[] for _ in range(batch)], [[] for _ in range(batch)]
    for out, head in zip(outputs, heads):
        _, _, h, w = out.shape
        c_ = head.classes
        for b in range(batch):
            for y in range(h):
                for x in range(w):
                    for a, (pw, ph) in enumerate(head.anchors):
                        t = [float(out[b, a * (5 + c_) + k, y, x]) for k in range(5 + c_)]
                        bx = (sig(t[0]) + x) / w * net_w
                        by = (sig(t[1]) + y) / h * net_h
                        bw = pw * math.exp(t[2]) / net_w * net_w
                        bh = ph * math.exp(t[3]) / net_h * net_h
                        boxes[b].append([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2])
                        obj[b].append(sig(t[4]))
                        cls[b].append([sig(v) for v in t[5:]])
    return np.array(boxes), np.array(obj), np.array(cls)


def random_outputs(rng: np.random.Generator, batch: int = 2, fill: float | None = None) -> list[np.ndarray]:
    outs = []
    for head, (h, w) in zip(HEADS, GRIDS):
        shape = (batch, len(head.anchors) * (5 + head.classes), h, w)
        outs.append(np.full(shape, fill, np.float32) if fill is not None
                    else rng.normal(0, 2, shape).astype(np.float32))
    return outs


# ---------------------------------------------------------------- decode


def test_decode_matches_paper_equations() -> None:
    outputs = random_outputs(np.random.default_rng(0))
    boxes, obj, cls = decode(outputs, HEADS, NET)
    n = sum(3 * h * w for h, w in GRIDS)
    assert boxes.shape == (2, n, 4) and obj.shape == (2, n) and cls.shape == (2, n, 4)
    assert boxes.dtype == obj.dtype == cls.dtype == np.float32
    ref_boxes, ref_obj, ref_cls = reference_decode(outputs, HEADS, NET)
    np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(obj, ref_obj, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cls, ref_cls, rtol=1e-6, atol=1e-7)


def test_decode_rejects_bad_shapes() -> None:
    outputs = random_outputs(np.random.default_rng(0))
    with pytest.raises(ValueError, match="2 outputs for 1 yolo heads"):
        decode(outputs, HEADS[:1], NET)
    with pytest.raises(ValueError, match="expected 27"):
        decode([outputs[0][:, :-1], outputs[1]], HEADS, NET)
    with pytest.raises(ValueError, match="batch"):
        decode([outputs[0], outputs[1][:1]], HEADS, NET)
    with pytest.raises(ValueError, match=r"\(B, A\*\(5\+C\), H, W\)"):
        decode([outputs[0][0], outputs[1]], HEADS, NET)
    other = YoloHead(layer=20, anchors=HEADS[1].anchors, classes=5)
    with pytest.raises(ValueError, match="class count"):
        decode(outputs, (HEADS[0], other), NET)
    with pytest.raises(ValueError, match="input_size"):
        decode(outputs, HEADS, (128, 0))


def test_sigmoid_is_stable() -> None:
    x = np.array([-1000.0, -40.0, -1.0, 0.0, 1.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = sigmoid(x)
    np.testing.assert_allclose(y[1:-1], [1 / (1 + math.exp(-v)) for v in x[1:-1]], rtol=1e-15)
    assert y[0] == 0.0 and y[-1] == 1.0 and y[3] == 0.5


# ---------------------------------------------------------------- NMS against torchvision


@pytest.fixture(scope="module")
def ops():
    """torchvision.ops, the reference NMS; its tests skip where torchvision is absent."""
    return pytest.importorskip("torchvision").ops


def random_boxes(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    boxes = rng.random((n, 4)) * 100
    boxes[:, 2:] += boxes[:, :2]
    return boxes.astype(dtype)


def boxes_with_iou(rng: np.random.Generator, n: int, iou: float, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Random boxes whose last box has IoU exactly ``iou`` with the first, scores in (0, 1).

    With b0 = [x0, y0, x1, y1] and b1 = [x0, y0, x1 + d, y1], IoU(b0, b1) = w / (w + d), so
    d = w * (1 - iou) / iou. (Our version of torchvision's ``_create_tensors_with_iou``.)
    """
    boxes = random_boxes(rng, n, np.float64)
    # Sides of at least 20 keep float32 rounding of the pair's IoU far below 1e-5.
    boxes[0, 2:] = boxes[0, :2] + rng.uniform(20, 100, 2)
    boxes[-1] = boxes[0]
    width = boxes[0, 2] - boxes[0, 0]
    boxes[-1, 2] += width * (1 - iou) / iou
    return boxes.astype(dtype), rng.random(n).astype(dtype)


def torch_nms(ops, boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    import torch

    return ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()


def torch_batched_nms(ops, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """torchvision's batched_nms in float64 (its coordinate-offset trick loses float32 precision)."""
    import torch

    return ops.batched_nms(torch.from_numpy(boxes.astype(np.float64)), torch.from_numpy(scores.astype(np.float64)),
                           torch.from_numpy(classes), iou).numpy()


@pytest.mark.parametrize("iou", (0.2, 0.45, 0.5, 0.8))
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_nms_matches_torchvision(iou: float, seed: int, dtype: type, ops) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, 300, dtype), rng.random(300).astype(dtype)
    keep = nms(boxes, scores, iou)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, torch_nms(ops, boxes, scores, iou))


@pytest.mark.parametrize("iou", (0.2, 0.45, 0.5, 0.8))
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("delta", (1e-5, -1e-5))
def test_nms_at_threshold(iou: float, seed: int, dtype: type, delta: float, ops) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = boxes_with_iou(rng, 50, iou + delta, dtype)
    scores[0], scores[-1] = 2.0, 1.5  # visited first and second: only box 0 can suppress the last
    keep = nms(boxes, scores, iou)
    np.testing.assert_array_equal(keep, torch_nms(ops, boxes, scores, iou))
    assert 0 in keep
    assert (49 in keep) == (delta < 0)  # suppressed only when IoU is strictly above


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_nms_score_ties_match_torchvision(seed: int, dtype: type, ops) -> None:
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 400, dtype)
    scores = (rng.integers(0, 4, 400) / 4).astype(dtype)  # four distinct values only
    keep = nms(boxes, scores, 0.5)
    np.testing.assert_array_equal(keep, torch_nms(ops, boxes, scores, 0.5))
    # Descending score, ties by ascending index.
    assert np.all(np.diff(scores[keep]) <= 0)
    ties = np.diff(scores[keep]) == 0
    assert np.all(np.diff(keep)[ties] > 0)


@pytest.mark.parametrize("iou, width, dtype", [(0.5, 20.0, np.float32), (0.5, 20.0, np.float64),
                                                (0.2, 50.0, np.float64), (0.8, 12.5, np.float64)])
def test_nms_iou_equal_to_threshold_is_kept(iou: float, width: float, dtype: type, ops) -> None:
    # IoU = 100 / (10 * width) rounds to the same double as the threshold: not strictly above.
    # (Only 0.5 is exact in float32 too; torchvision compares a float32 IoU with a double.)
    boxes = np.array([[0, 0, 10, 10], [0, 0, width, 10]], dtype)
    scores = np.array([0.9, 0.8], dtype)
    np.testing.assert_array_equal(nms(boxes, scores, iou), [0, 1])
    np.testing.assert_array_equal(torch_nms(ops, boxes, scores, iou), [0, 1])


def test_nms_identical_scores_keeps_lowest_index() -> None:
    boxes = np.array([[0, 0, 10, 10]] * 3 + [[20, 20, 30, 30]], np.float32)
    np.testing.assert_array_equal(nms(boxes, np.ones(4, np.float32), 0.5), [0, 3])


def test_nms_empty_and_degenerate(ops) -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.5).dtype == np.int64
    # Two empty boxes: IoU 0/0 is NaN, which suppresses nothing (as torchvision).
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), torch_nms(ops, boxes, scores, 0.5))
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 1])
    with pytest.raises(ValueError, match="scores"):
        nms(boxes, scores[:1], 0.5)


def per_class_torch_nms(ops, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    keep = np.concatenate([np.flatnonzero(classes == c)[torch_nms(ops, boxes[classes == c], scores[classes == c], iou)]
                           for c in np.unique(classes)])
    return keep[np.lexsort((keep, -scores[keep].astype(np.float64)))]


@pytest.mark.parametrize("iou", (0.2, 0.45, 0.5, 0.8))
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_batched_nms_matches_torchvision(iou: float, seed: int, dtype: type, ops) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, 300, dtype), rng.random(300).astype(dtype)
    classes = rng.integers(0, 5, 300)
    keep = batched_nms(boxes, scores, classes, iou)
    np.testing.assert_array_equal(keep, per_class_torch_nms(ops, boxes, scores, classes, iou))
    # Random scores have no ties, so torchvision's own order is comparable too (float64 boxes:
    # its coordinate-offset trick costs precision in float32).
    np.testing.assert_array_equal(keep, torch_batched_nms(ops, boxes, scores, classes, iou))


@pytest.mark.parametrize("iou", (0.2, 0.45, 0.5, 0.8))
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("delta", (1e-5, -1e-5))
def test_batched_nms_at_threshold(iou: float, dtype: type, delta: float, ops) -> None:
    rng = np.random.default_rng(11)
    boxes, scores = boxes_with_iou(rng, 40, iou + delta, dtype)
    scores[0], scores[-1] = 2.0, 1.5
    same = np.zeros(40, np.int64)
    keep = batched_nms(boxes, scores, same, iou)
    np.testing.assert_array_equal(keep, per_class_torch_nms(ops, boxes, scores, same, iou))
    assert (39 in keep) == (delta < 0)
    other = same.copy()
    other[-1] = 1  # the near-duplicate in another class is never suppressed
    keep = batched_nms(boxes, scores, other, iou)
    np.testing.assert_array_equal(keep, per_class_torch_nms(ops, boxes, scores, other, iou))
    assert 39 in keep


def test_batched_nms_ties(ops) -> None:
    rng = np.random.default_rng(5)
    boxes = random_boxes(rng, 300, np.float32)
    scores = (rng.integers(0, 3, 300) / 3).astype(np.float32)
    classes = rng.integers(0, 4, 300)
    keep = batched_nms(boxes, scores, classes, 0.45)
    np.testing.assert_array_equal(keep, per_class_torch_nms(ops, boxes, scores, classes, 0.45))
    tv = torch_batched_nms(ops, boxes, scores, classes, 0.45)
    assert set(keep.tolist()) == set(tv.tolist())  # torchvision's final order of ties is unspecified


# ---------------------------------------------------------------- postprocess


def hand_built(batch: int = 1) -> list[np.ndarray]:
    return random_outputs(np.random.default_rng(0), batch=batch, fill=-20.0)  # sigmoid(-20) ~ 2e-9


def put(outputs: list[np.ndarray], head: int, x: int, y: int, anchor: int, t: tuple[float, float, float, float],
        obj: float, classes: dict[int, float], b: int = 0) -> None:
    base = anchor * (5 + HEADS[head].classes)
    outputs[head][b, base:base + 4, y, x] = t
    outputs[head][b, base + 4, y, x] = obj
    for c, logit in classes.items():
        outputs[head][b, base + 5 + c, y, x] = logit


def test_postprocess_exact_box() -> None:
    outputs = hand_built()
    # head 0: 3x4 grid, stride 32; cell (x=2, y=1), anchor 1 = (62, 45); tw = ln 2 doubles the width.
    put(outputs, 0, x=2, y=1, anchor=1, t=(0.0, 0.0, math.log(2.0), 0.0), obj=30.0, classes={3: 30.0})
    [(boxes, scores, classes)] = postprocess(outputs, HEADS, NET)
    cx, cy = (0.5 + 2) / 4 * 128, (0.5 + 1) / 3 * 96
    np.testing.assert_allclose(boxes, [[cx - 62, cy - 22.5, cx + 62, cy + 22.5]], atol=1e-4)
    np.testing.assert_array_equal(classes, [3])
    assert boxes.dtype == scores.dtype == np.float32 and classes.dtype == np.int32
    assert scores[0] == pytest.approx(1.0)


def test_postprocess_multi_label_and_duplicates() -> None:
    outputs = hand_built()
    # One box, two classes: both kept.
    put(outputs, 1, x=3, y=2, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=5.0, classes={0: 4.0, 2: 3.0})
    # The same box from the neighbouring anchor slot, class 0, lower score: suppressed.
    put(outputs, 1, x=3, y=2, anchor=2, t=(0.0, 0.0, math.log(10 / 33), math.log(13 / 23)), obj=2.0,
        classes={0: 2.0})
    [(boxes, scores, classes)] = postprocess(outputs, HEADS, NET)
    np.testing.assert_array_equal(classes, [0, 2])
    np.testing.assert_allclose(boxes[0], boxes[1])
    assert scores[0] > scores[1] > DEFAULT_CONF
    # The duplicate has IoU 1 with the kept box, so it goes at any threshold below 1.
    [(_, _, classes)] = postprocess(outputs, HEADS, NET, iou=0.99)
    np.testing.assert_array_equal(classes, [0, 2])


def test_postprocess_max_det_and_order() -> None:
    outputs = hand_built(batch=2)
    logits = [6.0, 1.0, 4.0, 2.0, 3.0]
    for i, logit in enumerate(logits):  # far-apart boxes on head 1 (6x8 grid), class 1
        put(outputs, 1, x=i + 1, y=i % 6, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=30.0, classes={1: logit})
    [(_, scores, _), (b1, s1, c1)] = postprocess(outputs, HEADS, NET)
    assert len(scores) == 5 and np.all(np.diff(scores) < 0)
    assert len(b1) == len(s1) == len(c1) == 0  # image 1 holds nothing
    [(boxes, top, _), _] = postprocess(outputs, HEADS, NET, max_det=2)
    np.testing.assert_array_equal(top, scores[:2])
    np.testing.assert_allclose(top, sigmoid(np.array([6.0, 4.0])) * sigmoid(np.array(30.0)), rtol=1e-6)
    assert postprocess(outputs, HEADS, NET, max_det=0)[0][0].shape == (0, 4)


def test_postprocess_tie_order_is_candidate_index() -> None:
    outputs = hand_built()
    # Equal scores: later head cell first in the input, but candidate index decides the order.
    put(outputs, 1, x=7, y=5, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=30.0, classes={2: 30.0})
    put(outputs, 0, x=0, y=0, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=30.0, classes={3: 30.0, 1: 30.0})
    [(_, scores, classes)] = postprocess(outputs, HEADS, NET)
    assert np.all(scores == scores[0])
    np.testing.assert_array_equal(classes, [1, 3, 2])


def test_postprocess_conf_is_strict() -> None:
    outputs = hand_built()
    # sigmoid(0) = 0.5 exactly and sigmoid(30) rounds to 1.0 in float32: score is exactly 0.5.
    put(outputs, 0, x=1, y=1, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=0.0, classes={0: 30.0})
    assert len(postprocess(outputs, HEADS, NET, conf=0.5)[0][1]) == 0
    [(_, scores, _)] = postprocess(outputs, HEADS, NET, conf=0.4999)
    np.testing.assert_array_equal(scores, [0.5])


def test_defaults() -> None:
    assert (DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET) == (0.5, 0.45, 100)


@pytest.mark.parametrize("seed", range(3))
def test_postprocess_equals_decode_plus_reference_nms(seed: int, ops) -> None:
    # Noisy heads give many overlapping multi-label candidates; the result must equal the plain
    # recipe: every (box, class) with score > conf, per-class torchvision NMS, top max_det.
    outputs = random_outputs(np.random.default_rng(seed))
    conf, iou, max_det = 0.3, 0.45, 40
    boxes, obj, cls = decode(outputs, HEADS, NET)
    results = postprocess(outputs, HEADS, NET, conf=conf, iou=iou, max_det=max_det)
    for b, (out_boxes, out_scores, out_classes) in enumerate(results):
        scores = obj[b][:, None] * cls[b]
        box_index, class_ids = np.nonzero(scores > np.float32(conf))
        cand_scores = scores[box_index, class_ids]
        keep = per_class_torch_nms(ops, boxes[b][box_index], cand_scores, class_ids, iou)[:max_det]
        assert len(keep) == max_det  # enough candidates for the cut to matter
        np.testing.assert_array_equal(out_boxes, boxes[b][box_index[keep]])
        np.testing.assert_array_equal(out_scores, cand_scores[keep])
        np.testing.assert_array_equal(out_classes, class_ids[keep])


@pytest.mark.parametrize("top_k", [1, 7, 50])
def test_pre_nms_top_k_cuts_by_score_not_arrival(top_k: int, ops) -> None:
    # Only the top_k best candidates enter NMS; equal scores go to the lower candidate index.
    outputs = random_outputs(np.random.default_rng(5))
    conf, iou = 0.3, 0.45
    boxes, obj, cls = decode(outputs, HEADS, NET)
    out_boxes, out_scores, out_classes = postprocess(outputs, HEADS, NET, conf=conf, iou=iou, max_det=1000,
                                                     pre_nms_top_k=top_k)[0]
    scores = obj[0][:, None] * cls[0]
    box_index, class_ids = np.nonzero(scores > np.float32(conf))  # candidate-index order
    cand_scores = scores[box_index, class_ids]
    assert len(cand_scores) > top_k
    best = np.sort(np.argsort(-cand_scores.astype(np.float64), kind="stable")[:top_k])
    keep = per_class_torch_nms(ops, boxes[0][box_index[best]], cand_scores[best], class_ids[best], iou)
    np.testing.assert_array_equal(out_scores, cand_scores[best][keep])
    np.testing.assert_array_equal(out_classes, class_ids[best][keep])
    np.testing.assert_array_equal(out_boxes, boxes[0][box_index[best][keep]])
    # the cut keeps the best score overall
    assert out_scores[0] == cand_scores.max()


def test_pre_nms_top_k_none_means_no_cap() -> None:
    outputs = random_outputs(np.random.default_rng(2))
    capped = postprocess(outputs, HEADS, NET, conf=0.3, max_det=1000, pre_nms_top_k=10 ** 9)
    uncapped = postprocess(outputs, HEADS, NET, conf=0.3, max_det=1000, pre_nms_top_k=None)
    for a, b in zip(capped, uncapped):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="pre_nms_top_k"):
        postprocess(outputs, HEADS, NET, pre_nms_top_k=0)
