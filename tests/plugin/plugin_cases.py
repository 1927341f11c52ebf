"""Random YOLO heads for the plugin tests (imported by tests/plugin/test_plugin_*.py)."""
from __future__ import annotations

import numpy as np

from yolov3_trt.darknet.layers import YoloHead
from yolov3_trt.specs import DecodeSpec

YOLOV3_ANCHORS = (((116.0, 90.0), (156.0, 198.0), (373.0, 326.0)), ((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)),
                  ((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)))
STRIDES = (32, 16, 8)


def yolov3_heads(classes: int) -> list[YoloHead]:
    return [YoloHead(i, anchors, classes) for i, anchors in enumerate(YOLOV3_ANCHORS)]


def yolov3_decode(classes: int, size: int | tuple[int, int]) -> DecodeSpec:
    """yolov3's heads (strides 32/16/8) with ``classes`` classes at ``size`` (N, or (width, height))."""
    width, height = (size, size) if isinstance(size, int) else size
    return DecodeSpec.from_strides(YOLOV3_ANCHORS, [(s, s) for s in STRIDES], classes, (width, height))


def random_outputs(rng: np.random.Generator, batch: int, classes: int, size: int, *, obj_mean: float = -4.0,
                   cls_mean: float = -2.0, spread: float = 2.0, tie_step: float | None = None,
                   fp16: bool = False) -> list[np.ndarray]:
    """Heads (B, 3*(5+C), size/s, size/s) for strides 32/16/8: box terms ~N(0, 1), objectness
    and class logits ~N(mean, spread). ``tie_step`` rounds the logits to multiples of it, which
    makes many scores exactly equal; ``fp16`` returns float16 arrays."""
    outputs = []
    for stride in STRIDES:
        grid = size // stride
        out = rng.normal(0.0, 1.0, (batch, 3, 5 + classes, grid, grid)).astype(np.float32)
        out[:, :, 4] = rng.normal(obj_mean, spread, (batch, 3, grid, grid))
        out[:, :, 5:] = rng.normal(cls_mean, spread, (batch, 3, classes, grid, grid))
        if tie_step:
            out[:, :, 4:] = np.round(out[:, :, 4:] / tie_step) * tie_step
        out = out.reshape(batch, 3 * (5 + classes), grid, grid)
        outputs.append(out.astype(np.float16) if fp16 else out)
    return outputs
