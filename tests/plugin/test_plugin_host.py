"""The host build of the decode + NMS plugin against the numpy reference and torchvision.

Property-based (hypothesis, bounded examples): batch 1-8, 1/20/80/601 classes, sizes
320/416/608, thresholds 0.001-0.9, exact score ties, capacity overflow (top-K), FP16 inputs,
any logical thread count. The reference is yolov3_trt.postprocess.postprocess; torchvision's
batched_nms is an NMS nobody here wrote.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plugin_cases import random_outputs, yolov3_decode, yolov3_heads

from yolov3_trt.plugin import host
from yolov3_trt.plugin.host import postprocess_host
from yolov3_trt.plugin.params import PluginConfig
from yolov3_trt.plugin.sources import PluginError
from yolov3_trt.postprocess import DEFAULT_NMS, decode, postprocess
from yolov3_trt.specs import DecodeSpec, HeadSpec, NmsSpec

pytestmark = pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")

# Per-image float budget of the generated heads: keeps every example well under a second.
BUDGET = 3_000_000


def assert_same(got, expected):
    assert len(got) == len(expected)
    for (gb, gs, gc), (eb, es, ec) in zip(got, expected):
        assert gc.dtype == np.int32 and gs.dtype == np.float32 and gb.dtype == np.float32
        np.testing.assert_array_equal(gc, ec)
        np.testing.assert_array_equal(gs, es)
        np.testing.assert_allclose(gb, eb, rtol=1e-6, atol=1e-4)


@st.composite
def cases(draw):
    classes = draw(st.sampled_from([1, 20, 80, 601]))
    size = draw(st.sampled_from([320, 416, 608]))
    per_image = 3 * (5 + classes) * sum((size // s) ** 2 for s in (32, 16, 8))
    batch = draw(st.integers(1, max(1, min(8, BUDGET // per_image))))
    return dict(
        classes=classes, size=size, batch=batch,
        conf=draw(st.floats(0.001, 0.9)), iou=draw(st.floats(0.05, 0.95)),
        max_det=draw(st.integers(0, 300)),
        pre_nms_top_k=draw(st.sampled_from([1, 7, 64, 1000, 3840])),
        obj_mean=draw(st.floats(-8.0, 2.0)), cls_mean=draw(st.floats(-6.0, 2.0)),
        tie_step=draw(st.sampled_from([None, None, 0.5, 2.0])), fp16=draw(st.booleans()),
        threads=draw(st.sampled_from([1, 3, 64])), seed=draw(st.integers(0, 2 ** 31 - 1)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_host_equals_numpy_reference(case):
    rng = np.random.default_rng(case["seed"])
    outputs = random_outputs(rng, case["batch"], case["classes"], case["size"], obj_mean=case["obj_mean"],
                             cls_mean=case["cls_mean"], tie_step=case["tie_step"], fp16=case["fp16"])
    args = (outputs, yolov3_decode(case["classes"], case["size"]),
            NmsSpec(case["conf"], case["iou"], case["max_det"], case["pre_nms_top_k"]))
    expected = postprocess(*args)
    assert_same(postprocess_host(*args, threads=case["threads"]), expected)


@pytest.mark.parametrize("threads", [1, 2, 5, 256])
def test_thread_count_does_not_change_the_result(threads):
    """Phases are race-free between barriers: any number of logical threads, same output."""
    outputs = random_outputs(np.random.default_rng(3), 2, 80, 320, obj_mean=0.0, tie_step=0.5)
    config = PluginConfig.from_heads(yolov3_heads(80), (320, 320), [o.shape[:1:-1] for o in outputs], conf=0.05,
                                     iou=0.5, max_det=100, pre_nms_top_k=500)
    one = host.run_host(outputs, config, threads=1)
    for a, b in zip(one, host.run_host(outputs, config, threads=threads)):
        np.testing.assert_array_equal(a, b)


def _candidates(outputs, spec, conf, top_k):
    """Per image (boxes float64, scores, class ids, flat index) of the reference's top-K candidates,
    from the full decode (not the code under test)."""
    boxes, obj, probs = decode(outputs, spec)
    result = []
    for b in range(boxes.shape[0]):
        scores = (obj[b, :, None] * probs[b]).ravel()
        flat = np.flatnonzero(scores > np.float32(conf))
        order = np.lexsort((flat, -scores[flat].astype(np.float64)))[:top_k]
        flat = flat[order]
        result.append((boxes[b][flat // probs.shape[2]].astype(np.float64), scores[flat], flat % probs.shape[2]))
    return result


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.3, 0.45, 0.7])
def test_host_equals_torchvision_batched_nms(seed, iou):
    """Continuous logits (no exact ties, where torchvision's unstable sort may order differently)."""
    rng = np.random.default_rng(seed)
    classes, size, top_k = 20, 416, 2000
    outputs = random_outputs(rng, 2, classes, size, obj_mean=-1.0, cls_mean=-1.0)
    spec = yolov3_decode(classes, size)
    got = postprocess_host(outputs, spec, NmsSpec(0.05, iou, max_det=top_k, pre_nms_top_k=top_k))
    for (gb, gs, gc), (boxes, scores, ids) in zip(got, _candidates(outputs, spec, 0.05, top_k)):
        keep = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores.astype(np.float64)),
                                           torch.from_numpy(ids), iou).numpy()
        assert len(keep) > 10
        # torchvision may order exactly equal scores differently: compare in a canonical order
        mine = np.lexsort((*gb.T[::-1], gc, -gs.astype(np.float64)))
        theirs = np.lexsort((*boxes[keep].T[::-1], ids[keep], -scores[keep].astype(np.float64)))
        np.testing.assert_array_equal(gs[mine], scores[keep][theirs])
        np.testing.assert_array_equal(gc[mine], ids[keep][theirs])
        np.testing.assert_allclose(gb[mine], boxes[keep][theirs], rtol=1e-6, atol=1e-4)


def _pair_heads(iou_target: float):
    """One head, one anchor, 2x2 grid at 64x64: cells (0,0) and (1,0) hold two equal boxes whose
    IoU is ``iou_target``; (w - d) / (w + d) = IoU for horizontal offset d = 32."""
    width = 32.0 * (1 + iou_target) / (1 - iou_target)
    spec = DecodeSpec((HeadSpec(((32.0, 32.0),), (32, 32), (2, 2)),), 2, (64, 64))
    out = np.full((1, 7, 2, 2), -20.0, np.float32)
    out[0, 0:2] = 0.0                                  # centres at the cell centres
    out[0, 2] = np.log(width / 32.0)
    out[0, 3] = 0.0
    out[0, 4, 0, 0] = out[0, 4, 0, 1] = 10.0           # objectness of the two boxes
    out[0, 5, 0, 0], out[0, 5, 0, 1] = 3.0, 2.0        # class 0: the left box scores higher
    return [out], spec


@pytest.mark.parametrize("threshold", [0.3, 0.45, 0.5, 0.7])
@pytest.mark.parametrize("delta", [-1e-5, 1e-5])
def test_iou_at_threshold_plus_minus_epsilon(threshold, delta):
    outputs, spec = _pair_heads(threshold + delta)
    thresholds = replace(DEFAULT_NMS, conf=0.5, iou=threshold)
    got = postprocess_host(outputs, spec, thresholds)
    assert_same(got, postprocess(outputs, spec, thresholds))
    assert len(got[0][0]) == (1 if delta > 0 else 2)   # suppressed only when IoU > threshold


def _zero_area_pair():
    """One head of two anchors, 2x2 grid at 64x64: both anchors of cell (0, 0) give the box
    [16, 16, 16, 16] (tw = th = -100: the width rounds away in float32), class 0 scores 3 vs 2."""
    spec = DecodeSpec((HeadSpec(((32.0, 32.0), (16.0, 16.0)), (32, 32), (2, 2)),), 1, (64, 64))
    out = np.full((1, 2, 6, 2, 2), -20.0, np.float32)
    out[0, :, 0:2, 0, 0] = 0.0
    out[0, :, 2:4, 0, 0] = -100.0
    out[0, :, 4, 0, 0] = 10.0
    out[0, 0, 5, 0, 0], out[0, 1, 5, 0, 0] = 3.0, 2.0
    return [out.reshape(1, 12, 2, 2)], spec


@pytest.mark.parametrize("threshold", [0.0, 0.45, 1.0, -0.5])
def test_zero_area_boxes_meet(threshold):
    """Two zero-area boxes at one point: their union is empty, so their IoU is 0 (yolov3_trt.boxes'
    rule, the kernel's too): never above a threshold >= 0 (both kept), above a negative one (the
    weaker goes). The kernel's 0/0 was NaN, which kept both even then."""
    outputs, spec = _zero_area_pair()
    thresholds = replace(DEFAULT_NMS, conf=0.5, iou=threshold)
    got = postprocess_host(outputs, spec, thresholds)
    assert_same(got, postprocess(outputs, spec, thresholds))
    boxes, scores, classes = got[0]
    assert (boxes == 16.0).all() and (classes == 0).all()
    assert len(scores) == (2 if threshold >= 0 else 1)


def test_overflow_keeps_the_best_not_the_first():
    """Every candidate ties: the top-K cut keeps the K lowest flat indices (box * C + class)."""
    classes, size, k = 20, 320, 37
    outputs = [np.zeros_like(o) for o in random_outputs(np.random.default_rng(0), 1, classes, size)]
    spec, thresholds = yolov3_decode(classes, size), NmsSpec(conf=0.1, iou=1.0, max_det=k, pre_nms_top_k=k)
    got = postprocess_host(outputs, spec, thresholds)
    np.testing.assert_array_equal(got[0][2], np.arange(k) % classes)
    # a later box with a higher score must win over the early ties
    outputs[2][0, 4 + 2 * 25, 5, 7] = outputs[2][0, 5 + 2 * 25, 5, 7] = 5.0  # head 2, anchor 2, class 0
    got = postprocess_host(outputs, spec, thresholds)
    assert got[0][1][0] > got[0][1][1] and got[0][2][0] == 0
    assert_same(got, postprocess(outputs, spec, thresholds))


def test_empty_results():
    outputs = random_outputs(np.random.default_rng(1), 3, 80, 320, obj_mean=-12.0, spread=0.5)
    heads, spec = yolov3_heads(80), yolov3_decode(80, 320)
    for got in (postprocess_host(outputs, spec, replace(DEFAULT_NMS, conf=0.5)),
                postprocess_host(random_outputs(np.random.default_rng(1), 2, 80, 320), spec,
                                 replace(DEFAULT_NMS, max_det=0))):
        assert all(b.shape == (0, 4) and s.shape == (0,) and c.shape == (0,) for b, s, c in got)
    config = PluginConfig.from_heads(heads, (320, 320), [o.shape[:1:-1] for o in outputs], conf=0.5, iou=0.45,
                                     max_det=10, pre_nms_top_k=100)
    num_dets, boxes, scores, classes = host.run_host(outputs, config)
    assert num_dets.shape == (3, 1) and not num_dets.any() and not boxes.any() and not scores.any()
    assert (classes == -1).all()
    assert boxes.shape == (3, 10, 4) and scores.shape == classes.shape == (3, 10)


def test_bad_inputs_are_rejected():
    spec = yolov3_decode(80, 320)
    outputs = random_outputs(np.random.default_rng(0), 1, 80, 320)
    with pytest.raises(ValueError, match=r"^output 0 has shape \(1, 254, 10, 10\), expected .*\(B, 255, 10, 10\)"):
        postprocess_host([outputs[0][:, :-1], *outputs[1:]], spec)
    with pytest.raises(ValueError, match="max_det"):
        postprocess_host(outputs, spec, replace(DEFAULT_NMS, max_det=-1))
    with pytest.raises(ValueError, match="does not divide"):
        postprocess_host(outputs, yolov3_decode(80, (330, 320)))
    with pytest.raises(ValueError, match=r"^output 0 .*\(B, 255, 13, 13\)"):   # outputs of another size
        postprocess_host(outputs, yolov3_decode(80, 416))
    with pytest.raises(TypeError, match="DecodeSpec"):
        postprocess_host(outputs, yolov3_heads(80))
    with pytest.raises(TypeError, match="NmsSpec"):
        postprocess_host(outputs, spec, 0.5)


def test_missing_library_says_how_to_build_it(monkeypatch, tmp_path):
    monkeypatch.setattr(host, "_library", None)
    monkeypatch.setattr(host, "library_path", lambda: tmp_path / "libyolo_decode_nms.so")
    with pytest.raises(PluginError, match=r"pip install -e \.|build_ext --inplace"):
        host.load_library()
    assert not host.available()


def test_no_pre_nms_cap():
    outputs = random_outputs(np.random.default_rng(5), 1, 20, 320, obj_mean=-2.0)
    args = (outputs, yolov3_decode(20, 320), NmsSpec(0.3, 0.45, 300, None))
    assert_same(postprocess_host(*args), postprocess(*args))
