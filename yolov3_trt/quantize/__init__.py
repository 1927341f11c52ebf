"""FP16 and INT8 ONNX from an FP32 export: precision lives in the file (DESIGN.md section 1).

- :func:`quantize_fp16`: mixed FP16 with FP32 I/O (ModelOpt AutoCast).
- :func:`quantize_int8`: Q/DQ INT8 calibrated on images, placed for TensorRT (ModelOpt) or for
  ONNX Runtime on the CPU (``onnxruntime.quantization``).
- :func:`quantize_int8_budget`: INT8 within an AP50 budget, the most sensitive Conv layers kept
  in higher precision (:mod:`.budget`).

``python -m yolov3_trt.quantize`` is the command line. The quantization toolkits are imported
only when a function runs.
"""
from __future__ import annotations

from .budget import quantize_int8_budget
from .fp16 import quantize_fp16
from .int8 import quantize_int8
from .model_io import QuantizeError

__all__ = ["QuantizeError", "quantize_fp16", "quantize_int8", "quantize_int8_budget"]
