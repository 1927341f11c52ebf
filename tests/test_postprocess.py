"""Tests for yolov3_trt.postprocess: decode against the paper's equations, NMS against torchvision."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from yolov3_trt.postprocess import (
    DEFAULT_CONF,
    DEFAULT_IOU,
    DEFAULT_MAX_DET,
    DEFAULT_NMS,
    DEFAULT_PRE_NMS_TOP_K,
    batched_nms,
    check_outputs,
    decode,
    nms,
    postprocess,
    sigmoid,
)
from yolov3_trt.specs import DecodeSpec, NmsSpec

NET = (128, 96)  # (net_w, net_h)
ANCHORS = (((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)), ((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)))
GRIDS = ((3, 4), (6, 8))  # (H, W) per head: strides 32 and 16 at 128x96
DECODE = DecodeSpec.from_grids(ANCHORS, [(w, h) for h, w in GRIDS], 4, NET)


def thresholds(**changes) -> NmsSpec:
    """The default NMS with ``changes`` (conf, iou, max_det, pre_nms_top_k)."""
    return replace(DEFAULT_NMS, **changes)


def reference_decode(outputs, spec):
    """Per-element loops over the paper's equations, in Darknet's candidate order."""
    net_w, net_h = spec.input_size
    sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    batch = outputs[0].shape[0]
    boxes, obj, cls = [[] for _ in range(batch)], [[] for _ in range(batch)], [[] for _ in range(batch)]
    for out, head in zip(outputs, spec.heads):
        _, _, h, w = out.shape
        c_ = spec.num_classes
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
    for shape in DECODE.head_shapes():
        shape = (batch, *shape)
        outs.append(np.full(shape, fill, np.float32) if fill is not None
                    else rng.normal(0, 2, shape).astype(np.float32))
    return outs


# ---------------------------------------------------------------- decode


def test_decode_matches_paper_equations() -> None:
    outputs = random_outputs(np.random.default_rng(0))
    boxes, obj, cls = decode(outputs, DECODE)
    n = sum(3 * h * w for h, w in GRIDS)
    assert boxes.shape == (2, n, 4) and obj.shape == (2, n) and cls.shape == (2, n, 4)
    assert boxes.dtype == obj.dtype == cls.dtype == np.float32
    ref_boxes, ref_obj, ref_cls = reference_decode(outputs, DECODE)
    np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(obj, ref_obj, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(cls, ref_cls, rtol=1e-6, atol=1e-7)


def test_decode_rejects_bad_shapes() -> None:
    outputs = random_outputs(np.random.default_rng(0))
    one_head = DecodeSpec(DECODE.heads[:1], 4, NET)
    with pytest.raises(ValueError, match="2 outputs for 1 yolo heads"):
        decode(outputs, one_head)
    with pytest.raises(ValueError, match=r"^output 0 has shape \(2, 26, 3, 4\), expected .*\(B, 27, 3, 4\)"):
        decode([outputs[0][:, :-1], outputs[1]], DECODE)
    with pytest.raises(ValueError, match="^output 1 has batch 1, output 0 has 2$"):
        decode([outputs[0], outputs[1][:1]], DECODE)
    with pytest.raises(ValueError, match=r"^output 0 .*\(B, A\*\(5\+C\), H, W\)"):
        decode([outputs[0][0], outputs[1]], DECODE)
    # heads of another class count (5: 30 channels per head) than the outputs (4: 27)
    with pytest.raises(ValueError, match=r"^output 0 .*expected .*\(B, 30, 3, 4\) for 3 anchors, 5 classes"):
        decode(outputs, DecodeSpec(DECODE.heads, 5, NET))
    # the grids are checked too: a spec of another input size does not take these outputs
    with pytest.raises(ValueError, match=r"^output 0 .*\(B, 27, 6, 8\) .*8x6 grid"):
        decode(outputs, DecodeSpec.from_strides(ANCHORS, DECODE.strides, 4, (256, 192)))
    with pytest.raises(ValueError, match="input size must be positive"):
        DecodeSpec.from_outputs(ANCHORS, outputs, 4, (128, 0))
    with pytest.raises(TypeError, match="DecodeSpec"):
        decode(outputs, list(DECODE.heads))
    assert check_outputs(outputs, DECODE) == 2
    for message in (str(e.value) for e in _errors(outputs)):
        assert "\n" not in message


def _errors(outputs):
    """The ValueErrors of a few mismatched outputs (for the one-line check)."""
    errors = []
    for bad in ([outputs[0][:, :-1], outputs[1]], [outputs[0], outputs[1][:1]], [outputs[0][0], outputs[1]],
                outputs[:1]):
        with pytest.raises(ValueError) as err:
            check_outputs(bad, DECODE)
        errors.append(err)
    return errors


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
    # Two empty boxes: an empty union, IoU 0 (yolov3_trt.boxes; NaN in torchvision): nothing suppressed.
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
    base = anchor * (5 + DECODE.num_classes)
    outputs[head][b, base:base + 4, y, x] = t
    outputs[head][b, base + 4, y, x] = obj
    for c, logit in classes.items():
        outputs[head][b, base + 5 + c, y, x] = logit


def test_postprocess_exact_box() -> None:
    outputs = hand_built()
    # head 0: 3x4 grid, stride 32; cell (x=2, y=1), anchor 1 = (62, 45); tw = ln 2 doubles the width.
    put(outputs, 0, x=2, y=1, anchor=1, t=(0.0, 0.0, math.log(2.0), 0.0), obj=30.0, classes={3: 30.0})
    [(boxes, scores, classes)] = postprocess(outputs, DECODE)
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
    [(boxes, scores, classes)] = postprocess(outputs, DECODE)
    np.testing.assert_array_equal(classes, [0, 2])
    np.testing.assert_allclose(boxes[0], boxes[1])
    assert scores[0] > scores[1] > DEFAULT_CONF
    # The duplicate has IoU 1 with the kept box, so it goes at any threshold below 1.
    [(_, _, classes)] = postprocess(outputs, DECODE, thresholds(iou=0.99))
    np.testing.assert_array_equal(classes, [0, 2])


def test_postprocess_max_det_and_order() -> None:
    outputs = hand_built(batch=2)
    logits = [6.0, 1.0, 4.0, 2.0, 3.0]
    for i, logit in enumerate(logits):  # far-apart boxes on head 1 (6x8 grid), class 1
        put(outputs, 1, x=i + 1, y=i % 6, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=30.0, classes={1: logit})
    [(_, scores, _), (b1, s1, c1)] = postprocess(outputs, DECODE)
    assert len(scores) == 5 and np.all(np.diff(scores) < 0)
    assert len(b1) == len(s1) == len(c1) == 0  # image 1 holds nothing
    [(boxes, top, _), _] = postprocess(outputs, DECODE, thresholds(max_det=2))
    np.testing.assert_array_equal(top, scores[:2])
    np.testing.assert_allclose(top, sigmoid(np.array([6.0, 4.0])) * sigmoid(np.array(30.0)), rtol=1e-6)
    assert postprocess(outputs, DECODE, thresholds(max_det=0))[0][0].shape == (0, 4)


def test_postprocess_tie_order_is_candidate_index() -> None:
    outputs = hand_built()
    # Equal scores: later head cell first in the input, but candidate index decides the order.
    put(outputs, 1, x=7, y=5, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=30.0, classes={2: 30.0})
    put(outputs, 0, x=0, y=0, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=30.0, classes={3: 30.0, 1: 30.0})
    [(_, scores, classes)] = postprocess(outputs, DECODE)
    assert np.all(scores == scores[0])
    np.testing.assert_array_equal(classes, [1, 3, 2])


def test_postprocess_conf_is_strict() -> None:
    outputs = hand_built()
    # sigmoid(0) = 0.5 exactly and sigmoid(30) rounds to 1.0 in float32: score is exactly 0.5.
    put(outputs, 0, x=1, y=1, anchor=0, t=(0.0, 0.0, 0.0, 0.0), obj=0.0, classes={0: 30.0})
    assert len(postprocess(outputs, DECODE, thresholds(conf=0.5))[0][1]) == 0
    [(_, scores, _)] = postprocess(outputs, DECODE, thresholds(conf=0.4999))
    np.testing.assert_array_equal(scores, [0.5])


def test_defaults() -> None:
    assert (DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET) == (0.5, 0.45, 100)
    assert DEFAULT_NMS == NmsSpec(DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_PRE_NMS_TOP_K)
    with pytest.raises(TypeError, match="NmsSpec"):
        postprocess(hand_built(), DECODE, 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_postprocess_equals_decode_plus_reference_nms(seed: int, ops) -> None:
    # Noisy heads give many overlapping multi-label candidates; the result must equal the plain
    # recipe: every (box, class) with score > conf, per-class torchvision NMS, top max_det.
    outputs = random_outputs(np.random.default_rng(seed))
    conf, iou, max_det = 0.3, 0.45, 40
    boxes, obj, cls = decode(outputs, DECODE)
    results = postprocess(outputs, DECODE, thresholds(conf=conf, iou=iou, max_det=max_det))
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
    boxes, obj, cls = decode(outputs, DECODE)
    out_boxes, out_scores, out_classes = postprocess(outputs, DECODE, NmsSpec(conf=conf, iou=iou, max_det=1000,
                                                                           pre_nms_top_k=top_k))[0]
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
    capped = postprocess(outputs, DECODE, thresholds(conf=0.3, max_det=1000, pre_nms_top_k=10 ** 9))
    uncapped = postprocess(outputs, DECODE, thresholds(conf=0.3, max_det=1000, pre_nms_top_k=None))
    for a, b in zip(capped, uncapped):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="pre_nms_top_k"):
        postprocess(outputs, DECODE, thresholds(pre_nms_top_k=0))


# ---------------------------------------------------------------- bit-identity of the fast paths


COCO_ANCHORS = (((116.0, 90.0), (156.0, 198.0), (373.0, 326.0)), ((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)),
                ((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)))


def coco_decode(size: int) -> DecodeSpec:
    """yolov3's heads (80 classes, strides 32/16/8) at ``size`` x ``size``."""
    return DecodeSpec.from_strides(COCO_ANCHORS, ((32, 32), (16, 16), (8, 8)), 80, (size, size))


def trained_like_outputs(rng: np.random.Generator, size: int, batch: int = 2) -> list[np.ndarray]:
    """yolov3 heads at ``size`` as a trained COCO model leaves them: objectness logits mostly in
    -10..-6, a dozen confident boxes, a few hundred weak ones, class logits mostly negative."""
    outs = []
    for i in range(len(COCO_ANCHORS)):
        g = size // (32 >> i)
        out = rng.normal(0.0, 1.5, (batch, 3, 85, g, g)).astype(np.float32)
        out[:, :, 4] = rng.uniform(-10, -6, (batch, 3, g, g))
        out[:, :, 5:] = rng.uniform(-12, -3, (batch, 3, 80, g, g))
        for b in range(batch):
            n = 100 * (i + 1)  # weak boxes, objectness ~0.01..0.3
            a, y, x = rng.integers(3, size=n), rng.integers(g, size=n), rng.integers(g, size=n)
            out[b, a, 4, y, x] = rng.uniform(-4.5, -1, n)
            for _ in range(12):  # confident boxes, some in neighbouring cells (NMS has work)
                a, y, x = rng.integers(3), rng.integers(g - 1), rng.integers(g - 1)
                cls = 5 + rng.integers(80)
                out[b, a, 4, y:y + 2, x:x + 2] = rng.uniform(1, 6)
                out[b, a, cls, y:y + 2, x:x + 2] = rng.uniform(2, 8)
        outs.append(out.reshape(batch, 255, g, g))
    return outs


def reference_decode_all(outputs, spec):
    """The decode postprocess used to run on every candidate (float64 boxes over whole heads)."""
    net_w, net_h = spec.input_size
    classes = spec.num_classes
    all_boxes, all_obj, all_cls = [], [], []
    for raw, head in zip(outputs, spec.heads):
        batch, _, height, width = raw.shape
        anchors = np.asarray(head.anchors, dtype=np.float64)
        pred = raw.reshape(batch, len(anchors), 5 + classes, height, width).transpose(0, 3, 4, 1, 2)
        t = pred[..., :5].astype(np.float64)
        cy, cx = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
        with np.errstate(over="ignore"):
            bx = (sigmoid(t[..., 0]) + cx[None, :, :, None]) / width * net_w
            by = (sigmoid(t[..., 1]) + cy[None, :, :, None]) / height * net_h
            bw = anchors[:, 0] * np.exp(t[..., 2])
            bh = anchors[:, 1] * np.exp(t[..., 3])
        boxes = np.stack([bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2], axis=-1)
        all_boxes.append(boxes.reshape(batch, -1, 4))
        all_obj.append(sigmoid(t[..., 4]).astype(np.float32).reshape(batch, -1))
        all_cls.append(pred[..., 5:].reshape(batch, -1, classes))
    return (np.concatenate(all_boxes, axis=1).astype(np.float32), np.concatenate(all_obj, axis=1),
            np.concatenate(all_cls, axis=1))


def reference_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """The sequential greedy NMS: one kept box at a time, float64 IoU."""
    boxes = np.asarray(boxes, dtype=np.float64)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter = (np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0.0)
                 * np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            order = rest[~(inter / (areas[best] + areas[rest] - inter) > iou)]
    return np.asarray(keep, dtype=np.int64)


def reference_batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    if len(scores) == 0:
        return np.empty(0, np.int64)
    keep = np.concatenate([np.flatnonzero(classes == c)[reference_nms(boxes[classes == c], scores[classes == c], iou)]
                           for c in np.unique(classes)])
    return keep[np.lexsort((keep, -scores[keep].astype(np.float64)))]


def reference_postprocess(outputs, spec, conf, iou, max_det, top_k):
    """Decode everything, then every (box, class) above conf, top-k by score, per-class NMS."""
    boxes, obj, logits = reference_decode_all(outputs, spec)
    results = []
    for b in range(len(boxes)):
        scores = obj[b][:, None] * sigmoid(logits[b]).astype(np.float32)
        box_index, class_ids = np.nonzero(scores > np.float32(conf))
        cand = scores[box_index, class_ids]
        if top_k is not None and len(cand) > top_k:
            best = np.sort(np.argsort(-cand.astype(np.float64), kind="stable")[:top_k])
            box_index, class_ids, cand = box_index[best], class_ids[best], cand[best]
        keep = reference_batched_nms(boxes[b][box_index], cand, class_ids, iou)[:max_det]
        results.append((boxes[b][box_index[keep]], cand[keep], class_ids[keep].astype(np.int32)))
    return results


def assert_identical(got, expected) -> None:
    for (gb, gs, gc), (eb, es, ec) in zip(got, expected, strict=True):
        assert gb.dtype == np.float32 and gs.dtype == np.float32 and gc.dtype == np.int32
        assert np.array_equal(gb, eb) and np.array_equal(gs, es) and np.array_equal(gc, ec)


def test_decode_is_bit_identical_to_whole_head_decode() -> None:
    for outputs, spec in ((random_outputs(np.random.default_rng(4)), DECODE),
                          (trained_like_outputs(np.random.default_rng(4), 416, batch=1), coco_decode(416))):
        boxes, obj, cls = decode(outputs, spec)
        ref_boxes, ref_obj, ref_logits = reference_decode_all(outputs, spec)
        assert np.array_equal(boxes, ref_boxes) and np.array_equal(obj, ref_obj)
        assert np.array_equal(cls, sigmoid(ref_logits).astype(np.float32))


@pytest.mark.parametrize("size", [416, 608])
@pytest.mark.parametrize("conf, top_k", [(0.5, 4096), (0.25, 4096), (0.005, 4096), (0.005, 150), (0.005, None)])
def test_postprocess_is_bit_identical_on_trained_like_heads(size: int, conf: float, top_k: int | None) -> None:
    outputs = trained_like_outputs(np.random.default_rng(size + int(conf * 1000)), size)
    got = postprocess(outputs, coco_decode(size), NmsSpec(conf=conf, iou=0.45, max_det=300, pre_nms_top_k=top_k))
    assert_identical(got, reference_postprocess(outputs, coco_decode(size), conf, 0.45, 300, top_k))
    assert len(got[0][0]) > 10  # something survived


@pytest.mark.parametrize("seed", range(4))
def test_postprocess_is_bit_identical_on_noise(seed: int) -> None:
    outputs = random_outputs(np.random.default_rng(100 + seed), batch=3)
    for conf in (0.05, 0.3, 0.7):
        got = postprocess(outputs, DECODE, NmsSpec(conf=conf, iou=0.5, max_det=50, pre_nms_top_k=64))
        assert_identical(got, reference_postprocess(outputs, DECODE, conf, 0.5, 50, 64))


@pytest.mark.parametrize("sizes", [(1,), (2, 1, 3), (127, 128, 129), (300,), (40,) * 20, (5, 260, 1, 90)])
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_batched_nms_equals_sequential_greedy(sizes: tuple[int, ...], iou: float) -> None:
    # Class sizes on both sides of the pairwise / sequential switch, quantised scores (ties),
    # clustered boxes (long suppression chains) and a few empty boxes (empty unions).
    rng = np.random.default_rng(sum(sizes) + int(iou * 100))
    classes = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    n = len(classes)
    centres = rng.uniform(0, 60, (n, 2))
    sides = rng.uniform(5, 30, (n, 2))
    boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1).astype(np.float32)
    empty = rng.random(n) < 0.03
    boxes[empty, 2:] = boxes[empty, :2]
    scores = (rng.integers(0, 20, n) / 20).astype(np.float32)
    np.testing.assert_array_equal(batched_nms(boxes, scores, classes, iou),
                                  reference_batched_nms(boxes, scores, classes, iou))
    np.testing.assert_array_equal(nms(boxes, scores, iou), reference_nms(boxes, scores, iou))


@pytest.mark.parametrize("n", [100, 200])  # pairwise and sequential NMS
def test_nms_long_suppression_chain(n: int) -> None:
    # Box i overlaps box i+1 (IoU 2/3) but not box i+2 (IoU 3/7): greedy keeps every other box,
    # each decision depending on the one before.
    x = np.arange(n) * 2.0
    boxes = np.stack([x, np.zeros(n), x + 10, np.full(n, 10.0)], axis=1)
    scores = np.linspace(1.0, 0.5, n)
    np.testing.assert_array_equal(nms(boxes, scores, 0.45), np.arange(0, n, 2))
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(n, np.int64), 0.45), np.arange(0, n, 2))


def test_batched_nms_without_pairwise_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Too many same-class pairs for one batch: every class takes the sequential loop.
    import yolov3_trt.postprocess as module

    monkeypatch.setattr(module, "_PAIRWISE_PAIRS_MAX", 10)
    rng = np.random.default_rng(8)
    classes = rng.integers(0, 6, 150)
    boxes = random_boxes(rng, 150, np.float32) / 3
    scores = (rng.integers(0, 10, 150) / 10).astype(np.float32)
    for iou in (0.2, 0.5):
        np.testing.assert_array_equal(batched_nms(boxes, scores, classes, iou),
                                      reference_batched_nms(boxes, scores, classes, iou))
