"""Detection datasets: the common model, YOLO and COCO formats, and a synthetic generator.

``from yolov3_trt.data import load_dataset, DetectionDataset, Sample, generate, ...``. Names
resolve lazily, so importing the package costs nothing until a name is used (the training
loader beside it imports torch; the dataset model does not).
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it
_EXPORTS = {
    "Sample": "yolov3_trt.data.samples",
    "DetectionDataset": "yolov3_trt.data.samples",
    "load_dataset": "yolov3_trt.data.dataset",
    "cxcywh_to_xyxy": "yolov3_trt.data.samples",
    "xyxy_to_cxcywh": "yolov3_trt.data.samples",
    "IMAGE_SUFFIXES": "yolov3_trt.data.samples",
    "read_labels": "yolov3_trt.data.yolo_format",
    "label_path": "yolov3_trt.data.yolo_format",
    "write_yolo": "yolov3_trt.data.yolo_format",
    "load_coco": "yolov3_trt.data.coco_format",
    "to_coco": "yolov3_trt.data.coco_format",
    "write_coco": "yolov3_trt.data.coco_format",
    "generate": "yolov3_trt.data.synthetic",
    "SHAPE_NAMES": "yolov3_trt.data.shapes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'yolov3_trt.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
