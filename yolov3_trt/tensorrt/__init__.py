"""TensorRT and CUDA in one place: the device probe, the TensorRT version rules, the engine sidecar.

- :mod:`.device`: TensorRT's module and version (:func:`~.device.parse_version`,
  :func:`~.device.supports_aot_plugin`), the CUDA device probe and driver version;
- :mod:`.sidecar`: ``<engine>.json`` (:class:`~.sidecar.EngineInfo`) and whether an engine runs here.

Build (:mod:`yolov3_trt.build`), the runtime's TensorRT backend and the plugin import these;
nothing here imports tensorrt or cuda-python at import time. Other modules import it by its
absolute name (``from yolov3_trt.tensorrt.device import ...``): a relative ``..tensorrt`` reads
as the TensorRT module itself to ``check_trt_names.py``.
"""
from __future__ import annotations

from .device import (
    CudaDevice,
    availability,
    driver_version,
    is_available,
    parse_version,
    probe_cuda_device,
    supports_aot_plugin,
    tensorrt_module,
    tensorrt_version,
)
from .sidecar import EngineInfo, check_compatible, check_engine_hash, read_sidecar, sidecar_path, write_sidecar

__all__ = ["CudaDevice", "EngineInfo", "availability", "check_compatible", "check_engine_hash", "driver_version",
           "is_available", "parse_version", "probe_cuda_device", "read_sidecar", "sidecar_path",
           "supports_aot_plugin", "tensorrt_module", "tensorrt_version", "write_sidecar"]
