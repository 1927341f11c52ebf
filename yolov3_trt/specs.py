"""Decode and NMS of a YOLO model, described once: :class:`DecodeSpec` and :class:`NmsSpec`.

Every layer that decodes or suppresses (model heads, ONNX metadata, the end2end and plugin
tails, the plugin's C parameters and attributes, the engine sidecar, the Detector) takes or
gives these two values; their validation is here and nowhere else.

Conventions, the same in the whole package:

- sizes and grids are ``(width, height)``; strides ``(x, y)``; anchors ``(w, h)`` in input pixels;
- only arrays keep NumPy's order: a raw head tensor is ``(B, A * (5 + C), grid_h, grid_w)``
  (:meth:`DecodeSpec.head_shapes`), and :meth:`DecodeSpec.from_outputs` reads grids from it;
- heads are in the graph's output order; candidate ``i`` of head ``h`` is ``cell * A + anchor``
  (cells row-major), and head offsets add up in that order.

Invariants: ``stride * grid == input_size`` per head and axis; classes, heads, anchors >= 1.
NMS: a candidate is kept when ``score > conf``; greedy per-class NMS suppresses ``IoU > iou``;
at most ``max_det`` detections; the ``pre_nms_top_k`` best candidates (None: all) enter NMS.
No imports beyond the standard library: every other module may import this one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

Pair = tuple[int, int]
Anchors = tuple[tuple[float, float], ...]


def _pair(value: Sequence[int], what: str) -> Pair:
    width, height = (int(v) for v in value)
    if width < 1 or height < 1:
        raise ValueError(f"{what} must be positive, got {tuple(value)}")
    return width, height


@dataclass(frozen=True)
class HeadSpec:
    """One [yolo] head: its anchors (w, h) in input pixels, stride (x, y) and grid (width, height)."""

    anchors: Anchors
    stride: Pair
    grid: Pair

    @property
    def cells(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def num_boxes(self) -> int:
        """Candidate boxes of this head: cells x anchors."""
        return self.cells * len(self.anchors)


@dataclass(frozen=True)
class DecodeSpec:
    """How a model's raw heads become boxes and class scores (see the module docstring)."""

    heads: tuple[HeadSpec, ...]
    num_classes: int
    input_size: Pair                                   # (width, height)

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        width, height = _pair(self.input_size, "input size")
        if not self.heads:
            raise ValueError("a decode needs at least one head, got none")
        for i, head in enumerate(self.heads):
            (sx, sy), (gw, gh) = head.stride, head.grid
            if not head.anchors:
                raise ValueError(f"head {i} has no anchors")
            if sx < 1 or sy < 1 or gw < 1 or gh < 1 or (sx * gw, sy * gh) != (width, height):
                raise ValueError(f"head {i}: stride {(sx, sy)} and grid {gw}x{gh} do not divide the input "
                                 f"{width}x{height}")

    @classmethod
    def from_strides(cls, anchors: Sequence[Sequence[Sequence[float]]], strides: Sequence[Sequence[int]],
                     num_classes: int, input_size: Sequence[int]) -> "DecodeSpec":
        """From anchors and strides (x, y) per head (ModelMetadata's and the plugin attributes' form)."""
        width, height = _pair(input_size, "input size")
        if len(anchors) != len(strides):
            raise ValueError(f"{len(anchors)} anchor sets for {len(strides)} strides: heads need one of each")
        grids = []
        for i, (sx, sy) in enumerate((int(x), int(y)) for x, y in strides):
            if sx < 1 or sy < 1 or width % sx or height % sy:
                raise ValueError(f"head {i}: stride {(sx, sy)} does not divide the input {width}x{height}")
            grids.append((width // sx, height // sy))
        return cls.from_grids(anchors, grids, num_classes, (width, height))

    @classmethod
    def from_grids(cls, anchors: Sequence[Sequence[Sequence[float]]], grids: Sequence[Sequence[int]],
                   num_classes: int, input_size: Sequence[int]) -> "DecodeSpec":
        """From anchors and grids (width, height) per head (the network's shapes' form)."""
        width, height = _pair(input_size, "input size")
        if len(anchors) != len(grids):
            raise ValueError(f"{len(anchors)} anchor sets for {len(grids)} grids: heads need one of each")
        heads = []
        for i, (gw, gh) in enumerate((int(w), int(h)) for w, h in grids):
            if gw < 1 or gh < 1 or width % gw or height % gh:
                raise ValueError(f"head {i}: grid {gw}x{gh} does not divide the input {width}x{height}")
            heads.append(HeadSpec(_anchors(anchors[i]), (width // gw, height // gh), (gw, gh)))
        return cls(tuple(heads), int(num_classes), (width, height))

    @classmethod
    def from_outputs(cls, anchors: Sequence[Sequence[Sequence[float]]], outputs: Sequence,
                     num_classes: int, input_size: Sequence[int]) -> "DecodeSpec":
        """From raw head arrays ``(B, A*(5+C), grid_h, grid_w)``: their last two dims are the grids."""
        return cls.from_grids(anchors, [(o.shape[-1], o.shape[-2]) for o in outputs], num_classes, input_size)

    @property
    def anchors(self) -> tuple[Anchors, ...]:
        return tuple(h.anchors for h in self.heads)

    @property
    def strides(self) -> tuple[Pair, ...]:
        return tuple(h.stride for h in self.heads)

    @property
    def grids(self) -> tuple[Pair, ...]:
        """(width, height) of each head's grid."""
        return tuple(h.grid for h in self.heads)

    @property
    def num_boxes(self) -> int:
        """Candidate boxes over all heads (cells x anchors)."""
        return sum(h.num_boxes for h in self.heads)

    @property
    def num_pairs(self) -> int:
        """(box, class) candidates over all heads: what NMS ranks."""
        return self.num_boxes * self.num_classes

    def head_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """``(A*(5+C), grid_h, grid_w)`` of each raw head tensor (after the batch axis)."""
        return tuple((len(h.anchors) * (5 + self.num_classes), h.grid[1], h.grid[0]) for h in self.heads)


def _anchors(head: Sequence[Sequence[float]]) -> Anchors:
    return tuple((float(w), float(h)) for w, h in head)


@dataclass(frozen=True)
class NmsSpec:
    """Thresholds and caps of the per-class NMS (see the module docstring for the rules)."""

    conf: float
    iou: float
    max_det: int
    pre_nms_top_k: int | None                          # None: every candidate enters NMS

    def __post_init__(self) -> None:
        if not self.conf >= 0:
            raise ValueError(f"conf must be >= 0, got {self.conf}")
        if self.iou != self.iou:
            raise ValueError("iou must be a number, got NaN")
        if self.max_det < 0:
            raise ValueError(f"max_det must be >= 0, got {self.max_det}")
        if self.pre_nms_top_k is not None and self.pre_nms_top_k < 1:
            raise ValueError(f"pre_nms_top_k must be >= 1 or None, got {self.pre_nms_top_k}")

    def top_k_for(self, decode: DecodeSpec) -> int:
        """How many candidates enter NMS for ``decode``: the cap, or all, and at least 1."""
        pairs = max(decode.num_pairs, 1)
        return pairs if self.pre_nms_top_k is None else min(self.pre_nms_top_k, pairs)
