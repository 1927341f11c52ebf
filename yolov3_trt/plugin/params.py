"""The plugin's parameters: the decode + NMS specs in the kernel's C form.

:class:`PluginConfig` is a :class:`~yolov3_trt.specs.DecodeSpec` and an
:class:`~yolov3_trt.specs.NmsSpec` within the plugin's limits. :meth:`PluginConfig.struct_values`
names the value of every field of ``YoloParams`` (``plugins/yolo_decode_nms/yolo_params.h``);
from that one table come the ctypes mirror for the host library (:meth:`PluginConfig.to_struct`)
and the C++ initialiser compiled into the PTX (:func:`params_initialiser`, one assignment per
field, by name). Launch geometry and the shared-memory budget are plain functions.
Invariant: ``YoloParamsStruct._fields_`` equals the header's fields in name, order and type
(tests/plugin checks it against the header text and the built library's ``sizeof``).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from ..specs import DecodeSpec, NmsSpec

MAX_HEADS = 4        # YOLO_MAX_HEADS in yolo_params.h
MAX_ANCHORS = 9      # YOLO_MAX_ANCHORS
BLOCK = 256          # threads per block (one block per image)
SHARED_LIMIT = 48 * 1024  # what a launch gets without opting in (TensorRT's AOT launch cannot opt in)
DEFAULT_DEVICE_CAPACITY = 1024  # pre-NMS top-K on the GPU: 26.6 KB of shared memory
INIT_FUNCTION = "yolo_params_init"  # what the generated header defines (yolo_decode_nms_kernel.cu calls it)


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
        ("max_det", ctypes.c_int), ("pre_nms_top_k", ctypes.c_int),
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
    """What the kernel compiles in: a :class:`~yolov3_trt.specs.DecodeSpec` and an
    :class:`~yolov3_trt.specs.NmsSpec` whose ``pre_nms_top_k`` is a number (the kernel keeps that
    many candidates), within the plugin's limits (heads, anchors, 32-bit candidate indices)."""

    decode: DecodeSpec
    nms: NmsSpec

    def __post_init__(self) -> None:
        if not 1 <= len(self.decode.heads) <= MAX_HEADS:
            raise ValueError(f"the plugin takes 1 to {MAX_HEADS} heads, got {len(self.decode.heads)}")
        for i, head in enumerate(self.decode.heads):
            if len(head.anchors) > MAX_ANCHORS:
                raise ValueError(f"head {i} has {len(head.anchors)} anchors; the plugin takes 1 to {MAX_ANCHORS}")
        if self.nms.pre_nms_top_k is None:
            raise ValueError("the plugin needs a number for pre_nms_top_k (the candidates it keeps), got None")
        if self.decode.num_pairs >= 2 ** 32 - 1:
            raise ValueError("too many (box, class) pairs for 32-bit candidate indices")

    @classmethod
    def from_heads(cls, heads, input_size, grids, *, conf: float, iou: float, max_det: int,
                   pre_nms_top_k: int) -> "PluginConfig":
        """From :class:`~yolov3_trt.darknet.layers.YoloHead` s and their grids (width, height)."""
        decode = DecodeSpec.from_grids([h.anchors for h in heads], grids, heads[0].classes if heads else 0, input_size)
        return cls(decode, NmsSpec(conf=conf, iou=iou, max_det=max_det, pre_nms_top_k=pre_nms_top_k))

    # the specs' fields, as the kernel and the plugin attributes name them
    num_classes = property(lambda self: self.decode.num_classes)
    input_size = property(lambda self: self.decode.input_size)
    anchors = property(lambda self: self.decode.anchors)
    strides = property(lambda self: self.decode.strides)
    grids = property(lambda self: self.decode.grids, doc="(width, height) of each head")
    conf = property(lambda self: self.nms.conf)
    iou = property(lambda self: self.nms.iou)
    max_det = property(lambda self: self.nms.max_det)
    pre_nms_top_k = property(lambda self: self.nms.pre_nms_top_k)

    def struct_values(self) -> dict[str, object]:
        """Value of every ``YoloParams`` field, by name (arrays as nested lists, unused slots 0)."""
        heads = self.decode.heads
        pad = [0] * (MAX_HEADS - len(heads))
        anchors = [[[0.0, 0.0] for _ in range(MAX_ANCHORS)] for _ in range(MAX_HEADS)]
        for i, head in enumerate(heads):
            for j, (pw, ph) in enumerate(head.anchors):
                anchors[i][j] = [float(pw), float(ph)]
        return {
            "num_classes": self.num_classes, "num_heads": len(heads),
            "input_w": self.input_size[0], "input_h": self.input_size[1],
            "stride_x": [h.stride[0] for h in heads] + pad, "stride_y": [h.stride[1] for h in heads] + pad,
            "grid_w": [h.grid[0] for h in heads] + pad, "grid_h": [h.grid[1] for h in heads] + pad,
            "num_anchors": [len(h.anchors) for h in heads] + pad, "anchors": anchors,
            "conf": float(np.float32(self.conf)), "iou": float(self.iou),
            "max_det": self.max_det, "pre_nms_top_k": int(self.pre_nms_top_k),
        }

    def to_struct(self) -> YoloParamsStruct:
        """The ctypes ``YoloParams``, filled field by field from :meth:`struct_values`."""
        s = YoloParamsStruct()
        values = self.struct_values()
        for name, _ in YoloParamsStruct._fields_:
            _assign(getattr(s, name) if isinstance(values[name], list) else s, name, values[name])
        return s


def _assign(target, name: str, value) -> None:
    """Set a scalar field ``name`` of ``target``, or fill a ctypes array ``target`` from nested lists."""
    if not isinstance(value, list):
        setattr(target, name, value)
        return
    for i, item in enumerate(value):
        if isinstance(item, list):
            _assign(target[i], name, item)
        else:
            target[i] = item


def _c_literal(value) -> str:
    if isinstance(value, float):
        return repr(value)  # shortest round-trip decimal: the compiler reads back the same double
    return str(int(value))


def _c_assignments(prefix: str, value) -> list[str]:
    """``prefix = value;`` for a scalar, one assignment per element for (nested) arrays."""
    if isinstance(value, list):
        return [line for i, item in enumerate(value) for line in _c_assignments(f"{prefix}[{i}]", item)]
    return [f"    {prefix} = {_c_literal(value)};"]


def params_initialiser(config: PluginConfig) -> str:
    """A C++ constexpr function ``yolo_params_init()`` returning the config's ``YoloParams``,
    generated field by field by name (``p.num_classes = 80;``), never by position."""
    values = config.struct_values()
    lines = [f"HOST_DEVICE constexpr YoloParams {INIT_FUNCTION}() {{", "    YoloParams p{};"]
    for name, ctype in YoloParamsStruct._fields_:
        value = values[name]
        if ctype is ctypes.c_float:
            value = float(value)
            lines.append(f"    p.{name} = (float){_c_literal(value)};")
        else:
            lines += _c_assignments(f"p.{name}", value)
    return "\n".join([*lines, "    return p;", "}"])


def constants_header(config: PluginConfig, fp16: bool) -> str:
    """``yolo_decode_nms_constants.h`` for the kernel: :func:`params_initialiser`, the input type
    and the head arguments. Deterministic text: part of the PTX cache key."""
    if config.pre_nms_top_k > max_device_capacity():
        raise ValueError(f"pre_nms_top_k {config.pre_nms_top_k} needs {shared_memory_bytes(config.pre_nms_top_k)} "
                         f"bytes of shared memory; the GPU kernel allows up to {max_device_capacity()} (48 KB)")
    heads = len(config.anchors)
    args = ", ".join(f"const YOLO_INPUT_T* __restrict__ head{i}" for i in range(heads))
    names = ", ".join(f"head{i}" for i in range(heads))
    return "\n".join([
        "/* Generated by yolov3_trt.plugin.params.constants_header: do not edit. */",
        "#pragma once",
        '#include "decode_nms_common.cuh"',
        f"#define YOLO_INPUT_T {'unsigned short' if fp16 else 'float'}",
        f"#define YOLO_CAPACITY {config.pre_nms_top_k}",
        f"#define YOLO_CAPACITY_POW2 {next_pow2(config.pre_nms_top_k)}",
        f"#define YOLO_BLOCK {BLOCK}",
        f"#define YOLO_HEAD_ARGS {args}",
        f"#define YOLO_HEAD_LIST {names}",
        params_initialiser(config),
        "",
    ])


def launch_dims(batch: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(grid, block)``: one block of :data:`BLOCK` threads per image; static shared memory only."""
    if batch < 0:
        raise ValueError(f"batch must be >= 0, got {batch}")
    return (batch, 1, 1), (BLOCK, 1, 1)
