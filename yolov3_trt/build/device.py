"""Old home of the TensorRT/CUDA probe: re-exports :mod:`yolov3_trt.tensorrt.device`."""
from __future__ import annotations

from yolov3_trt.tensorrt.device import (CudaDevice, availability, cuda_runtime, is_available, parse_version,  # noqa: F401
                               probe_cuda_device, supports_aot_plugin, tensorrt_module, tensorrt_version)
