"""yolov3_trt: YOLOv3 from Darknet or PyTorch training to TensorRT inference.

Heavy modules load on first use, so ``import yolov3_trt`` does not import torch: the runtime
must work on a robot that has only numpy, OpenCV and an inference engine installed.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "YoloV3": "yolov3_trt.model.yolov3",
    "load_checkpoint": "yolov3_trt.model.checkpoint",
    "save_checkpoint": "yolov3_trt.model.checkpoint",
    "Detections": "yolov3_trt.detections",
    "Detector": "yolov3_trt.runtime.detector",
    "ModelMetadata": "yolov3_trt.metadata",
    "YoloV3TrtError": "yolov3_trt.errors",
    "CfgError": "yolov3_trt.errors",
    "DarknetWeightsError": "yolov3_trt.errors",
    "load_cfg": "yolov3_trt.darknet.builtin",
    "builtin_cfg": "yolov3_trt.darknet.builtin",
    "BUILTIN_MODELS": "yolov3_trt.darknet.builtin",
    "letterbox": "yolov3_trt.preprocess",
    "preprocess": "yolov3_trt.preprocess",
    "read_image": "yolov3_trt.preprocess",
    "decode": "yolov3_trt.postprocess",
    "postprocess": "yolov3_trt.postprocess",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'yolov3_trt' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
