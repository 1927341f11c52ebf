"""TensorRT engines: ONNX -> plan with its sidecar (:mod:`.pipeline`, :mod:`.steps`).

The device probe and the sidecar live in :mod:`yolov3_trt.tensorrt`; re-exported here.

Light to import (TensorRT, cuda-python and onnx load on first use), so tools and benchmarks can
ask :func:`is_available` / :func:`availability` without paying for them:

    from yolov3_trt.build import availability
    ok, reason = availability()      # (False, "TensorRT is not installed (...)") on a CPU machine
"""
from __future__ import annotations

from ..errors import EngineCompatibilityError
from yolov3_trt.tensorrt.device import (CudaDevice, availability, is_available, probe_cuda_device, supports_aot_plugin,
                               tensorrt_version)
from yolov3_trt.tensorrt.sidecar import EngineInfo, check_compatible, read_sidecar, sidecar_path, write_sidecar

__all__ = ["CudaDevice", "EngineCompatibilityError", "EngineInfo", "availability", "check_compatible",
           "is_available", "probe_cuda_device", "read_sidecar", "sidecar_path", "supports_aot_plugin",
           "tensorrt_version", "write_sidecar"]
