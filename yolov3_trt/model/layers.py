"""Torch modules for Darknet layer types, each matching Darknet's arithmetic exactly."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..darknet.layers import ConvSpec, MaxPoolSpec, SoftmaxSpec, UpsampleSpec, YoloSpec

LEAKY_SLOPE = 0.1  # Darknet's leaky activation
# Running-statistics update per training step. Darknet uses 0.01, which needs ~500 steps before
# the statistics used at inference match the weights; 0.03 settles in ~150, so short fine-tuning
# runs evaluate correctly, and long runs end in the same place.
BN_MOMENTUM = 0.03


def activation(name: str) -> nn.Module:
    """Darknet activation by name (linear, leaky 0.1, relu, logistic)."""
    if name == "leaky":
        return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "logistic":
        return nn.Sigmoid()
    return nn.Identity()


class ConvBlock(nn.Module):
    """[convolutional]: conv, then batch norm (no conv bias) or conv bias, then activation."""

    def __init__(self, in_channels: int, spec: ConvSpec, bn_eps: float):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, spec.filters, spec.size, spec.stride, spec.padding,
                              groups=spec.groups, bias=not spec.batch_normalize)
        self.bn = nn.BatchNorm2d(spec.filters, eps=bn_eps, momentum=BN_MOMENTUM) if spec.batch_normalize else None
        self.act = activation(spec.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class MaxPool(nn.Module):
    """[maxpool] with Darknet's padding: ``padding // 2`` before, the rest after, by -inf.

    yolov3-tiny's size=2 stride=1 pool therefore pads only right and bottom and keeps 13x13.
    """

    def __init__(self, spec: MaxPoolSpec):
        super().__init__()
        self.size, self.stride = spec.size, spec.stride
        before = spec.padding // 2
        self.pad = (before, spec.padding - before, before, spec.padding - before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Upsample(nn.Module):
    """[upsample]: nearest neighbour by an integer stride, times ``scale``."""

    def __init__(self, spec: UpsampleSpec):
        super().__init__()
        self.stride, self.scale = spec.stride, spec.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=float(self.stride), mode="nearest")
        return x * self.scale if self.scale != 1.0 else x


class GlobalAvgPool(nn.Module):
    """[avgpool]: mean over height and width, keeping 1x1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Softmax(nn.Module):
    """[softmax]: over each of ``groups`` equal slices of a sample's flattened values."""

    def __init__(self, spec: SoftmaxSpec):
        super().__init__()
        self.groups, self.temperature = spec.groups, spec.temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], self.groups, -1) / self.temperature
        return torch.softmax(flat, dim=-1).reshape(x.shape)


class YoloActivation(nn.Module):
    """What a [yolo] layer passes on to later layers: σ on x, y, objectness and classes.

    The model's outputs are the raw tensors *before* this (Darknet's layout); the activated
    tensor is only computed when a [route] or [shortcut] reads a [yolo] layer.
    """

    def __init__(self, spec: YoloSpec):
        super().__init__()
        self.anchors, self.channels = len(spec.mask), spec.classes + 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        v = x.reshape(b, self.anchors, self.channels, h, w)
        v = torch.cat([v[:, :, :2].sigmoid(), v[:, :, 2:4], v[:, :, 4:].sigmoid()], dim=2)
        return v.reshape(x.shape)
