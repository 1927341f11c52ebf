"""The YoloV3 torch module: any Darknet cfg, Darknet's numbers."""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from ..darknet.builtin import load_cfg, set_anchors, set_classes
from ..darknet.cfg import DarknetCfg
from ..darknet.layers import (
    AvgPoolSpec,
    ConvSpec,
    MaxPoolSpec,
    Network,
    RouteSpec,
    ShortcutSpec,
    SoftmaxSpec,
    UpsampleSpec,
    YoloHead,
    YoloSpec,
    build_network,
)
from ..darknet.weights import DarknetHeader, read_darknet_weights, write_darknet_weights
from ..specs import DecodeSpec
from . import layers as L
from .convert import darknet_to_state_dict, state_dict_to_darknet

# Darknet's GPU path (cuDNN) uses 1e-5; its CPU path and OpenCV's importer use 1e-6.
DARKNET_BN_EPS = 1e-5


class YoloV3(nn.Module):
    """A network built from a Darknet cfg, with Darknet's layer semantics.

    ``forward(x)`` takes ``(B, C, H, W)`` float RGB in [0, 1] (H, W multiples of the network's
    stride, 32 for YOLOv3) and returns a list with one raw tensor per [yolo] layer, in cfg order,
    shaped ``(B, A*(5+C), H/stride, W/stride)`` exactly as Darknet lays it out (channel
    ``a*(5+C)+k``: tx, ty, tw, th, objectness, class logits). Decoding is separate
    (:func:`yolov3_trt.postprocess.decode`). A cfg without [yolo] layers (a classifier such as
    darknet53) returns its last layer's output as the only element.
    """

    def __init__(self, cfg: DarknetCfg, *, bn_eps: float = DARKNET_BN_EPS):
        super().__init__()
        self.cfg = cfg
        self.network: Network = build_network(cfg)
        self.darknet_header = DarknetHeader()
        shapes = self.network.shapes()
        modules = []
        for spec, shape in zip(self.network.layers, shapes):
            modules.append(_layer_module(spec, shape.input[0], bn_eps))
        self.layers = nn.ModuleList(modules)
        self._heads = self.network.heads()
        # Outputs later layers read; everything else is dropped as soon as it is used.
        self._keep = set()
        for i, spec in enumerate(self.network.layers):
            if isinstance(spec, RouteSpec):
                self._keep.update(spec.layers)
            elif isinstance(spec, ShortcutSpec):
                self._keep.add(spec.from_layer)

    @classmethod
    def from_cfg(cls, path_or_name: str | os.PathLike | DarknetCfg, num_classes: int | None = None, *,
                 anchors: Sequence[tuple[float, float]] | None = None, bn_eps: float = DARKNET_BN_EPS) -> "YoloV3":
        """Build from a cfg file, a built-in name (``yolov3``, ``yolov3-tiny``, ``yolov3-spp``) or a
        parsed cfg. ``num_classes`` / ``anchors`` re-shape the heads for a user's classes."""
        cfg = path_or_name.copy() if isinstance(path_or_name, DarknetCfg) else load_cfg(path_or_name)
        if num_classes is not None:
            set_classes(cfg, num_classes)
        if anchors is not None:
            set_anchors(cfg, anchors)
        return cls(cfg, bn_eps=bn_eps)

    @property
    def heads(self) -> list[YoloHead]:
        """Anchors (input pixels) and class count of each output, in output order."""
        return list(self._heads)

    @property
    def num_classes(self) -> int:
        return self._heads[0].classes if self._heads else self.network.shapes()[-1].output[0]

    @property
    def input_size(self) -> tuple[int, int]:
        """The cfg's (width, height)."""
        return self.network.net.width, self.network.net.height

    def decode_spec(self, size: tuple[int, int] | None = None) -> DecodeSpec:
        """How this model's outputs decode at ``size`` (width, height; default the cfg's).
        CfgError when the network cannot run at that size; ValueError when it has no [yolo] head."""
        width, height = size or self.input_size
        shapes = self.network.shapes(width, height)
        grids = [(shapes[h.layer].output[2], shapes[h.layer].output[1]) for h in self._heads]
        return DecodeSpec.from_grids([h.anchors for h in self._heads], grids, self.num_classes, (width, height))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        saved: dict[int, torch.Tensor] = {}
        outputs: list[torch.Tensor] = []
        for i, (spec, module) in enumerate(zip(self.network.layers, self.layers)):
            if isinstance(spec, RouteSpec):
                parts = [saved[j] for j in spec.layers]
                x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            elif isinstance(spec, ShortcutSpec):
                x = module(x + saved[spec.from_layer])
            elif isinstance(spec, YoloSpec):
                outputs.append(x)
                if i in self._keep:
                    x = module(x)
            else:
                x = module(x)
            if i in self._keep:
                saved[i] = x
        return outputs if outputs else [x]

    # ---- Darknet weights ------------------------------------------------------------------

    def load_darknet_weights(self, path: str | os.PathLike) -> "YoloV3":
        """Load a Darknet ``.weights`` file (size checked against the cfg)."""
        header, arrays = read_darknet_weights(path, self.network)
        state = darknet_to_state_dict(arrays)
        self.load_state_dict(state, strict=True)
        self.darknet_header = header
        return self

    def save_darknet_weights(self, path: str | os.PathLike, header: DarknetHeader | None = None) -> None:
        """Write Darknet ``.weights`` (atomically); the header defaults to the one loaded."""
        write_darknet_weights(path, self.network, state_dict_to_darknet(self.state_dict(), self.network),
                              header or self.darknet_header)


def _layer_module(spec, in_channels: int, bn_eps: float) -> nn.Module:
    if isinstance(spec, ConvSpec):
        return L.ConvBlock(in_channels, spec, bn_eps)
    if isinstance(spec, ShortcutSpec):
        return L.activation(spec.activation)
    if isinstance(spec, MaxPoolSpec):
        return L.MaxPool(spec)
    if isinstance(spec, UpsampleSpec):
        return L.Upsample(spec)
    if isinstance(spec, AvgPoolSpec):
        return L.GlobalAvgPool()
    if isinstance(spec, SoftmaxSpec):
        return L.Softmax(spec)
    if isinstance(spec, YoloSpec):
        return L.YoloActivation(spec)
    return nn.Identity()  # route: handled in forward
