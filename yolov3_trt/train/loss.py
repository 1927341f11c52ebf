"""The YOLOv3 loss as Darknet computes it (``yolo_layer.c``, ``forward_yolo_layer``).

Darknet writes the *negative gradient* (``delta``) of each output directly; this module writes
the loss whose gradient is exactly that delta, so training follows Darknet's updates:

- **Assignment.** Each ground truth goes to the one anchor, among *all* anchors of the network,
  whose shape (w, h, centred) overlaps it best; the [yolo] head whose ``mask`` holds that anchor
  predicts it, from the cell containing the box centre. Two truths on the same cell and anchor:
  the later one sets the box and objectness targets (Darknet overwrites), class targets add up.
- **x, y.** Darknet's delta ``scale * (t - sigmoid(tx))`` is applied to the logit, which is the
  gradient of ``scale * BCE(sigmoid(tx), t)``, with ``t = truth.x * W - cell_x`` in [0, 1).
- **w, h.** delta ``scale * (log(truth.w * net_w / anchor_w) - tw)``: the gradient of
  ``scale/2 * (tw - t)^2``. ``scale = 2 - truth.w * truth.h`` (normalised area), which weighs small
  boxes up. Unlike the other terms its gradient grows without bound with the error, which makes
  it the stiff part of the loss; the trainer clips the gradient's norm rather than change the
  delta.
- **Objectness.** delta ``target - sigmoid(obj)`` on every prediction: BCE with target 1 for the
  assigned ones, 0 for the rest, except predictions whose decoded box overlaps any truth of the
  image by more than ``ignore_thresh`` (from the cfg) and that are not assigned: no gradient.
- **Classes.** delta ``onehot - sigmoid(cls)`` at assigned predictions only: independent
  logistic classifiers, BCE per class, multi-label, no softmax.
- **Scale over the batch.** Darknet sums deltas over the batch and divides the learning rate by
  the batch size; the loss here is the sum divided by the batch size: the same update, and a
  learning rate that means what it means in a Darknet cfg.

``truth_thresh`` < 1 (Darknet's extra positives for predictions overlapping a truth by more than
it) is not implemented; every official cfg uses 1, and the loss refuses anything else.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..darknet.layers import YoloSpec
from ..errors import YoloV3TrtError


@dataclass(frozen=True)
class HeadTargets:
    """Where the assigned truths of one head go, and what each must predict."""

    index: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # batch, anchor, row, col
    xy: torch.Tensor        # (P, 2) in [0, 1): offset within the cell
    wh: torch.Tensor        # (P, 2) log(size / anchor)
    scale: torch.Tensor     # (P,)  2 - w*h
    classes: torch.Tensor   # (P, C) multi-hot


def box_iou_cxcywh(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix (N, M) of boxes given as (cx, cy, w, h), as Darknet's ``box_iou``.

    The torch twin of :func:`yolov3_trt.boxes.box_iou` (same convention: continuous areas,
    intersection clipped at 0, IoU 0 where the union is not positive), in the tensors' dtype.
    """
    a1, a2 = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b1, b2 = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    inter = (torch.minimum(a2, b2) - torch.maximum(a1, b1)).clamp(min=0).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(union))


def best_anchors(wh: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Index of the anchor whose centred shape overlaps each (w, h) best (ties: the first)."""
    inter = torch.minimum(wh[:, None], anchors[None]).prod(-1)
    iou = inter / (wh[:, None].prod(-1) + anchors[None].prod(-1) - inter)
    return iou.argmax(dim=1)


class YoloLoss:
    """Darknet's YOLOv3 loss for the [yolo] layers of a network (see the module docstring)."""

    def __init__(self, specs: list[YoloSpec]):
        if not specs:
            raise YoloV3TrtError("the network has no [yolo] layers to train")
        for spec in specs:
            if spec.truth_thresh < 1:
                raise YoloV3TrtError(f"truth_thresh={spec.truth_thresh} < 1 is not implemented (every official "
                                     "YOLOv3 cfg uses 1)")
            if spec.anchors != specs[0].anchors:
                raise YoloV3TrtError("all [yolo] layers must list the same anchors (as Darknet's cfgs do)")
        self.specs = specs
        self.anchors = torch.tensor(specs[0].anchors, dtype=torch.float32)  # (total, 2) input pixels

    def __call__(self, outputs: list[torch.Tensor], targets: torch.Tensor,
                 input_size: tuple[int, int]) -> tuple[torch.Tensor, dict[str, float]]:
        """``outputs`` as YoloV3.forward returns them; ``targets`` (M, 6): batch, class, cx, cy, w, h
        normalised to the input. Returns the loss (sum / batch size) and its parts, for logging."""
        batch = outputs[0].shape[0]
        net = torch.tensor(input_size, dtype=torch.float32, device=targets.device)
        targets = targets.float()
        best = best_anchors(targets[:, 4:6] * net, self.anchors.to(targets.device))
        parts = {"xy": 0.0, "wh": 0.0, "obj": 0.0, "cls": 0.0}
        total = outputs[0].new_zeros(())
        for out, spec in zip(outputs, self.specs):
            terms = self._head_loss(out, spec, targets, best, net)
            for name, value in terms.items():
                total = total + value
                parts[name] += float(value.detach()) / batch
        return total / batch, parts

    def _head_loss(self, out: torch.Tensor, spec: YoloSpec, targets: torch.Tensor, best: torch.Tensor,
                   net: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, h, w = out.shape
        num, classes = len(spec.mask), spec.classes
        p = out.view(b, num, classes + 5, h, w).permute(0, 1, 3, 4, 2)  # (B, A, H, W, 5+C)
        t = self._assign(spec, targets, best, net, (b, num, h, w), out.device)
        ignore = self._ignored(p.detach(), spec, targets, net, (w, h))
        obj_target = torch.zeros(b, num, h, w, device=out.device)
        weight = (~ignore).float()
        obj_target[t.index] = 1.0
        weight[t.index] = 1.0
        obj = F.binary_cross_entropy_with_logits(p[..., 4], obj_target, weight=weight, reduction="sum")
        if t.xy.shape[0] == 0:
            zero = out.sum() * 0.0  # keeps the graph connected for DDP
            return {"xy": zero, "wh": zero, "obj": obj, "cls": zero}
        assigned = p[t.index]  # (P, 5+C)
        xy = (t.scale[:, None] * F.binary_cross_entropy_with_logits(assigned[:, :2], t.xy, reduction="none")).sum()
        wh = (0.5 * t.scale[:, None] * (assigned[:, 2:4] - t.wh) ** 2).sum()
        cls = F.binary_cross_entropy_with_logits(assigned[:, 5:], t.classes, reduction="sum")
        return {"xy": xy, "wh": wh, "obj": obj, "cls": cls}

    def _assign(self, spec: YoloSpec, targets: torch.Tensor, best: torch.Tensor, net: torch.Tensor,
                shape: tuple[int, int, int, int], device) -> HeadTargets:
        b, num, h, w = shape
        mask = torch.tensor(spec.mask, device=device)
        mine = (best[:, None] == mask[None]).nonzero()       # (P, 2): target row, local anchor
        rows, local = mine[:, 0], mine[:, 1]
        t = targets[rows]
        col = (t[:, 2] * w).long().clamp(0, w - 1)
        row = (t[:, 3] * h).long().clamp(0, h - 1)
        bi = t[:, 0].long()
        # One slot per (image, anchor, row, col). Later truths overwrite earlier ones there
        # (Darknet's order): `keep` is each slot's last truth, in ascending slot order, the same
        # order as `torch.unique`'s, whose `inverse` maps every truth to its slot.
        key = ((bi * num + local) * h + row) * w + col
        order = torch.argsort(key, stable=True)
        last = torch.ones_like(order, dtype=torch.bool)
        last[:-1] = key[order][1:] != key[order][:-1]
        keep = order[last]
        _, inverse = torch.unique(key, return_inverse=True)
        cls = torch.zeros(len(keep), spec.classes, device=device)
        cls[inverse, t[:, 1].long()] = 1.0  # class targets accumulate over the slot's truths
        anchors = self.anchors.to(device)[mask[local[keep]]]
        tk = t[keep]
        return HeadTargets(
            index=(bi[keep], local[keep], row[keep], col[keep]),
            xy=torch.stack([tk[:, 2] * w - col[keep], tk[:, 3] * h - row[keep]], dim=1),
            wh=torch.log(tk[:, 4:6] * net / anchors),
            scale=2.0 - tk[:, 4] * tk[:, 5],
            classes=cls,
        )

    def _ignored(self, p: torch.Tensor, spec: YoloSpec, targets: torch.Tensor, net: torch.Tensor,
                 grid: tuple[int, int]) -> torch.Tensor:
        """(B, A, H, W) True where the predicted box overlaps a truth of its image > ignore_thresh."""
        b, num, h, w, _ = p.shape
        ys, xs = torch.meshgrid(torch.arange(h, device=p.device), torch.arange(w, device=p.device), indexing="ij")
        anchors = self.anchors.to(p.device)[list(spec.mask)]  # (A, 2)
        cx = (p[..., 0].sigmoid() + xs) / w
        cy = (p[..., 1].sigmoid() + ys) / h
        bw = p[..., 2].clamp(max=20).exp() * anchors[:, 0, None, None] / net[0]
        bh = p[..., 3].clamp(max=20).exp() * anchors[:, 1, None, None] / net[1]
        boxes = torch.stack([cx, cy, bw, bh], dim=-1).view(b, -1, 4)
        ignore = torch.zeros(b, num * h * w, dtype=torch.bool, device=p.device)
        for i in range(b):
            truths = targets[targets[:, 0] == i, 2:6]
            if len(truths):
                ignore[i] = box_iou_cxcywh(boxes[i], truths).max(dim=1).values > spec.ignore_thresh
        return ignore.view(b, num, h, w)
