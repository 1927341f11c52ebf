"""The fused YOLO decode + NMS plugin (``plugins/yolo_decode_nms/``) from Python.

- :mod:`.params`: the parameters (``PluginConfig``, the ctypes struct, the generated constants
  header, launch geometry, shared-memory budget);
- :mod:`.host`: the host build through ctypes (``postprocess_host``, the CPU post-processor);
- :mod:`.ptx`: the kernel compiled to PTX with NVRTC or nvcc, cached;
- :mod:`.trt_plugin`: the TensorRT quickly-deployable-plugin registration (TensorRT >= 10.9).

Nothing here imports tensorrt, torch or CUDA at import time.
"""
from .sources import PluginError

__all__ = ["PluginError"]
