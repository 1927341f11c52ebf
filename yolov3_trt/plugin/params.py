"""The plugin's parameters: one description of a model's decode + NMS, in three forms.

:class:`PluginConfig` is the Python form (built from :class:`~yolov3_trt.darknet.layers.YoloHead`
lists or from ONNX node attributes); :meth:`PluginConfig.to_struct` gives the ctypes mirror of
``plugins/yolo_decode_nms/yolo_params.h`` for the host library, and :func:`constants_header` the
``yolo_decode_nms_constants.h`` that compiles the same values into the PTX (TensorRT's AOT path
does not serialise plugin attributes). Launch geometry and the shared-memory budget are plain
functions too, so they are tested without a GPU or TensorRT.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..darknet.layers import YoloHead

MAX_HEADS = 4        # YOLO_MAX_HEADS in yolo_params.h
MAX_ANCHORS = 9      # YOLO_MAX_ANCHORS
BLOCK = 256          # threads per block (one block per image)
SHARED_LIMIT = 48 * 1024  # what a launch gets without opting in (TensorRT's AOT launch cannot opt in)
DEFAULT_DEVICE_CAPACITY = 1024  # pre-NMS top-K on the GPU: 26.6 KB of shared memory


class YoloParamsStruct(ctypes.Structure):
    """ctypes mirror of ``YoloParams`` (field order and types must match yolo_params.h)."""

    _fields_ = [
        ("num_classes", ctypes.c_int), ("num_heads", ctypes.c_int),
        ("input_w", ctypes.c_int), ("input_h", ctypes.c_int),
        ("stride_x", ctypes.c_int * MAX_HEADS), ("stride_y", ctypes.c_int * MAX_HEADS),
        ("grid_w", ctypes.c_int * MAX_HEADS), ("grid_h", ctypes.c_int * MAX_HEADS),
        ("num_anchors", ctypes.c_int * MAX_HEADS),
        ("anchors", ((ctypes.c_double * 2) * MAX_ANCHORS) * MAX_HEADS),
        ("conf", ctypes.c_float), ("iou", ctypes.c_double),
        ("max_det", ctypes.c_int), ("capacity", ctypes.c_int),
    ]


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``n`` (1 for n <= 1)."""
    return 1 << max(0, int(n) - 1).bit_length()


def shared_memory_bytes(capacity: int) -> int:
    """Static shared memory of the kernel for a pre-NMS ``capacity`` (yolo_decode_nms_kernel.cu):
    keys (8 B, power-of-two count), boxes (16 B), alive flags (1 B, padded to 4 for the next
    array), 256-bin histogram, counters. Equals what ptxas reports (tests/plugin)."""
    return next_pow2(capacity) * 8 + capacity * 16 + (capacity + 3) // 4 * 4 + 256 * 4 + 2 * 4


def max_device_capacity() -> int:
    """Largest pre-NMS capacity whose shared memory fits :data:`SHARED_LIMIT`."""
    capacity = 1
    while shared_memory_bytes(capacity + 1) <= SHARED_LIMIT:
        capacity += 1
    return capacity


@dataclass(frozen=True)
class PluginConfig:
    """Everything the kernel compiles in: heads (anchors in network pixels, strides), input size,
    classes, thresholds, output width ``max_det`` and pre-NMS ``capacity``."""

    num_classes: int
    input_size: tuple[int, int]                                  # (width, height)
    anchors: tuple[tuple[tuple[float, float], ...], ...]         # per head, (pw, ph)
    strides: tuple[tuple[int, int], ...]                         # per head, (x, y)
    conf: float
    iou: float
    max_det: int
    capacity: int

    def __post_init__(self) -> None:
        width, height = self.input_size
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if width < 1 or height < 1:
            raise ValueError(f"input size must be positive, got {self.input_size}")
        if not 1 <= len(self.anchors) <= MAX_HEADS or len(self.strides) != len(self.anchors):
            raise ValueError(f"1 to {MAX_HEADS} heads with one stride each, got {len(self.anchors)} anchor "
                             f"sets and {len(self.strides)} strides")
        for i, (head, (sx, sy)) in enumerate(zip(self.anchors, self.strides)):
            if not 1 <= len(head) <= MAX_ANCHORS:
                raise ValueError(f"head {i} has {len(head)} anchors; the plugin takes 1 to {MAX_ANCHORS}")
            if sx < 1 or sy < 1 or width % sx or height % sy:
                raise ValueError(f"head {i}: stride {(sx, sy)} does not divide the input {self.input_size}")
        if not self.conf >= 0:
            raise ValueError(f"conf must be >= 0, got {self.conf}")
        if self.iou != self.iou:
            raise ValueError("iou must be a number, got NaN")
        if self.max_det < 0:
            raise ValueError(f"max_det must be >= 0, got {self.max_det}")
        if self.capacity < 1:
            raise ValueError(f"capacity (pre-NMS top-K) must be >= 1, got {self.capacity}")
        if self.num_candidates * self.num_classes >= 2 ** 32 - 1:
            raise ValueError("too many (box, class) pairs for 32-bit candidate indices")

    @classmethod
    def from_heads(cls, heads: Sequence[YoloHead], input_size: Sequence[int], grids: Sequence[tuple[int, int]],
                   *, conf: float, iou: float, max_det: int, capacity: int) -> "PluginConfig":
        """From decode heads and their grids ``(H, W)`` (the head tensors' last two dims)."""
        width, height = (int(v) for v in input_size)
        strides = []
        for i, (gh, gw) in enumerate(grids):
            if gw < 1 or gh < 1 or width % gw or height % gh:
                raise ValueError(f"head {i}: grid {gw}x{gh} does not divide the input {width}x{height}")
            strides.append((width // gw, height // gh))
        return cls(num_classes=heads[0].classes if heads else 0, input_size=(width, height),
                   anchors=tuple(tuple((float(w), float(h)) for w, h in head.anchors) for head in heads),
                   strides=tuple(strides), conf=float(conf), iou=float(iou), max_det=int(max_det),
                   capacity=int(capacity))

    @property
    def grids(self) -> tuple[tuple[int, int], ...]:
        """(H, W) of each head."""
        width, height = self.input_size
        return tuple((height // sy, width // sx) for sx, sy in self.strides)

    @property
    def num_candidates(self) -> int:
        """Boxes (cells x anchors) over all heads."""
        return sum(h * w * len(a) for (h, w), a in zip(self.grids, self.anchors))

    def to_struct(self) -> YoloParamsStruct:
        s = YoloParamsStruct()
        s.num_classes, s.num_heads = self.num_classes, len(self.anchors)
        s.input_w, s.input_h = self.input_size
        for i, ((sx, sy), (gh, gw), head) in enumerate(zip(self.strides, self.grids, self.anchors)):
            s.stride_x[i], s.stride_y[i], s.grid_w[i], s.grid_h[i] = sx, sy, gw, gh
            s.num_anchors[i] = len(head)
            for j, (pw, ph) in enumerate(head):
                s.anchors[i][j][0], s.anchors[i][j][1] = pw, ph
        s.conf, s.iou = float(np.float32(self.conf)), self.iou
        s.max_det, s.capacity = self.max_det, self.capacity
        return s


def _c_double(v: float) -> str:
    return repr(float(v))  # shortest round-trip decimal: the compiler reads back the same double


def _c_ints(values: Sequence[int]) -> str:
    padded = list(values) + [0] * (MAX_HEADS - len(values))
    return "{" + ", ".join(str(int(v)) for v in padded) + "}"


def constants_header(config: PluginConfig, fp16: bool) -> str:
    """``yolo_decode_nms_constants.h`` for the kernel: the config as a ``YoloParams`` initialiser,
    the input type and the head arguments. Deterministic text: part of the PTX cache key."""
    if config.capacity > max_device_capacity():
        raise ValueError(f"capacity {config.capacity} needs {shared_memory_bytes(config.capacity)} bytes of shared "
                         f"memory; the GPU kernel allows up to {max_device_capacity()} (48 KB)")
    s = config.to_struct()
    heads = len(config.anchors)
    anchors = "{" + ", ".join(
        "{" + ", ".join("{" + f"{_c_double(s.anchors[i][j][0])}, {_c_double(s.anchors[i][j][1])}" + "}"
                        for j in range(MAX_ANCHORS)) + "}" for i in range(MAX_HEADS)) + "}"
    init = (f"{{{s.num_classes}, {heads}, {s.input_w}, {s.input_h}, {_c_ints(s.stride_x[:heads])}, "
            f"{_c_ints(s.stride_y[:heads])}, {_c_ints(s.grid_w[:heads])}, {_c_ints(s.grid_h[:heads])}, "
            f"{_c_ints(s.num_anchors[:heads])}, {anchors}, (float){_c_double(s.conf)}, {_c_double(s.iou)}, "
            f"{s.max_det}, {s.capacity}}}")
    args = ", ".join(f"const YOLO_INPUT_T* __restrict__ head{i}" for i in range(heads))
    names = ", ".join(f"head{i}" for i in range(heads))
    return "\n".join([
        "/* Generated by yolov3_trt.plugin.params.constants_header: do not edit. */",
        "#pragma once",
        f"#define YOLO_INPUT_T {'unsigned short' if fp16 else 'float'}",
        f"#define YOLO_CAPACITY {config.capacity}",
        f"#define YOLO_CAPACITY_POW2 {next_pow2(config.capacity)}",
        f"#define YOLO_BLOCK {BLOCK}",
        f"#define YOLO_HEAD_ARGS {args}",
        f"#define YOLO_HEAD_LIST {names}",
        f"#define YOLO_PARAMS_INIT {init}",
        "",
    ])


def launch_dims(batch: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(grid, block)``: one block of :data:`BLOCK` threads per image; static shared memory only."""
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    return (batch, 1, 1), (BLOCK, 1, 1)
