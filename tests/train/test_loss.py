"""The loss's gradients equal Darknet's deltas on hand-built cases."""
from __future__ import annotations

import math

import pytest
import torch

from yolov3_trt.darknet.builtin import load_cfg
from yolov3_trt.darknet.layers import YoloSpec, build_network
from yolov3_trt.errors import YoloV3TrtError
from yolov3_trt.train.loss import YoloLoss, best_anchors

NET = (128, 128)           # tiny: head 0 is 4x4 (stride 32, anchors 3,4,5), head 1 is 8x8 (anchors 0,1,2)
C = 80


def tiny_specs() -> list[YoloSpec]:
    return [s for s in build_network(load_cfg("yolov3-tiny")).layers if isinstance(s, YoloSpec)]


def raw_outputs(batch: int = 1, fill: float = 0.0) -> list[torch.Tensor]:
    return [torch.full((batch, 3 * (C + 5), 4, 4), fill, requires_grad=True),
            torch.full((batch, 3 * (C + 5), 8, 8), fill, requires_grad=True)]


def slot(t: torch.Tensor, anchor: int, k: int, row: int, col: int) -> torch.Tensor:
    return t[0, anchor * (C + 5) + k, row, col]


def test_best_anchor_is_over_all_scales():
    anchors = torch.tensor(tiny_specs()[0].anchors)
    assert best_anchors(torch.tensor([[81.0, 82.0], [10.0, 14.0], [300.0, 300.0]]), anchors).tolist() == [3, 0, 5]


def test_one_truth_gradients_are_darknet_deltas():
    outs = raw_outputs()
    # truth: class 7, centre in head-0 cell (row 1, col 2), size of anchor 3 (81x82) -> head 0, local anchor 0
    cx, cy, w, h = 2.3 / 4, 1.6 / 4, 81 / 128, 82 / 128
    targets = torch.tensor([[0, 7, cx, cy, w, h]])
    loss, parts = YoloLoss(tiny_specs())(outs, targets, NET)
    loss.backward()
    g = outs[0].grad
    scale = 2 - w * h
    sig0 = 0.5  # every logit is 0
    assert slot(g, 0, 0, 1, 2).item() == pytest.approx(scale * (sig0 - 0.3), rel=1e-5)
    assert slot(g, 0, 1, 1, 2).item() == pytest.approx(scale * (sig0 - 0.6), rel=1e-5)
    assert slot(g, 0, 2, 1, 2).item() == pytest.approx(scale * (0 - math.log(w * 128 / 81)), abs=1e-6)
    assert slot(g, 0, 3, 1, 2).item() == pytest.approx(scale * (0 - math.log(h * 128 / 82)), abs=1e-6)
    assert slot(g, 0, 4, 1, 2).item() == pytest.approx(sig0 - 1)
    assert slot(g, 0, 5 + 7, 1, 2).item() == pytest.approx(sig0 - 1)
    assert slot(g, 0, 5 + 3, 1, 2).item() == pytest.approx(sig0)
    # every other prediction: only objectness, pushed to 0 (delta = 0 - sigmoid), unless ignored
    assert slot(g, 1, 4, 0, 0).item() == pytest.approx(sig0)
    assert slot(g, 1, 0, 0, 0).item() == 0 and slot(g, 1, 5 + 7, 1, 2).item() == 0
    assert outs[1].grad[0, 4::C + 5].eq(sig0).all()  # head 1 has no truth: all background
    assert parts["cls"] > 0 and parts["obj"] > 0


def test_loss_is_divided_by_batch():
    targets = torch.tensor([[0, 1, 0.5, 0.5, 0.2, 0.2]])
    one = raw_outputs(1)
    two = raw_outputs(2)
    l1, _ = YoloLoss(tiny_specs())(one, targets, NET)
    l2, _ = YoloLoss(tiny_specs())(two, torch.cat([targets, targets + torch.tensor([1, 0, 0, 0, 0, 0])]), NET)
    assert l1.item() == pytest.approx(l2.item(), rel=1e-6)


def test_predictions_overlapping_a_truth_are_ignored():
    outs = raw_outputs(fill=-4.0)  # tiny boxes everywhere, far from the truth
    # truth: exactly anchor 2's shape (37x58), centred on head-1 cell (row 3, col 4) -> assigned there
    targets = torch.tensor([[0, 0, 4.5 / 8, 3.5 / 8, 37 / 128, 58 / 128]])
    with torch.no_grad():
        for anchor, (aw, ah) in ((2, (37, 58)), (1, (23, 27))):
            # predict the truth's box exactly: centre of the cell, size = truth size
            outs[1][0, anchor * (C + 5):anchor * (C + 5) + 2, 3, 4] = 0.0
            outs[1][0, anchor * (C + 5) + 2, 3, 4] = math.log(37 / aw)
            outs[1][0, anchor * (C + 5) + 3, 3, 4] = math.log(58 / ah)
    total, _ = YoloLoss(tiny_specs())(outs, targets, NET)
    total.backward()
    g = outs[1].grad
    background = 1 / (1 + math.exp(4))  # sigmoid(-4) - 0
    assert g[0, 1 * (C + 5) + 4, 3, 4].item() == 0.0                         # IoU 1 > 0.7, not assigned
    assert g[0, 2 * (C + 5) + 4, 3, 4].item() == pytest.approx(background - 1)  # assigned: target 1
    assert g[0, 0 * (C + 5) + 4, 3, 4].item() == pytest.approx(background)      # elsewhere: target 0


def test_two_truths_on_one_slot_last_box_wins_classes_add():
    outs = raw_outputs()
    a = [0, 2, 2.5 / 4, 1.5 / 4, 81 / 128, 82 / 128]
    b = [0, 5, 2.4 / 4, 1.4 / 4, 80 / 128, 80 / 128]
    total, _ = YoloLoss(tiny_specs())(outs, torch.tensor([a, b]), NET)
    total.backward()
    g = outs[0].grad
    scale = 2 - b[4] * b[5]
    assert slot(g, 0, 0, 1, 2).item() == pytest.approx(scale * (0.5 - 0.4), rel=1e-4)  # b's x offset
    assert slot(g, 0, 5 + 2, 1, 2).item() == pytest.approx(-0.5)
    assert slot(g, 0, 5 + 5, 1, 2).item() == pytest.approx(-0.5)


def test_no_truths_only_objectness():
    outs = raw_outputs(batch=2)
    total, parts = YoloLoss(tiny_specs())(outs, torch.zeros(0, 6), NET)
    total.backward()
    assert parts["xy"] == parts["wh"] == parts["cls"] == 0
    assert total.item() == pytest.approx(3 * (16 + 64) * math.log(2), rel=1e-5)


def test_truth_thresh_below_one_is_refused():
    spec = tiny_specs()[0]
    from dataclasses import replace
    with pytest.raises(YoloV3TrtError, match="truth_thresh=0.9"):
        YoloLoss([replace(spec, truth_thresh=0.9)])
