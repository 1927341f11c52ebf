"""Where the plugin's C++/CUDA sources and the host library are, and the plugin's error type."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import PluginError

# The files of plugins/yolo_decode_nms/ the kernel is compiled from (the host library adds
# yolo_decode_nms_host.{h,cpp}); setup.py copies them into wheels as yolov3_trt/plugin/src/.
KERNEL_SOURCES = ("yolo_params.h", "decode_nms_common.cuh", "executors.cuh", "decode_nms.cuh",
                  "yolo_decode_nms_kernel.cu")
KERNEL_FILE = "yolo_decode_nms_kernel.cu"
# extern "C": the PTX entry symbol. At most 15 characters: TensorRT 10.9-10.13 hands the name from
# aot_impl to the builder as c_str() of a temporary std::string (fixed in 10.14), which stays
# valid only while the name fits libstdc++'s 15-character inline buffer.
KERNEL_NAME = "yolo_decode_nms"
MAX_KERNEL_NAME = 15
CONSTANTS_HEADER = "yolo_decode_nms_constants.h"
LIBRARY_NAME = "libyolo_decode_nms.so"
BUILD_HINT = 'build it with `pip install -e .` (or `python setup.py build_ext --inplace`) in the yolov3_trt checkout'



def source_dir() -> Path:
    """The folder holding the kernel sources: a wheel's packaged copy, else the checkout's."""
    packaged = Path(__file__).resolve().parent / "src"
    if all((packaged / name).is_file() for name in KERNEL_SOURCES):
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "plugins" / "yolo_decode_nms"
    if all((checkout / name).is_file() for name in KERNEL_SOURCES):
        return checkout
    raise PluginError(f"{checkout}: the plugin sources ({', '.join(KERNEL_SOURCES)}) are missing; "
                      "reinstall yolov3_trt")


def read_sources() -> dict[str, str]:
    """Name -> text of every kernel source file."""
    folder = source_dir()
    return {name: (folder / name).read_text(encoding="utf-8") for name in KERNEL_SOURCES}


def sources_sha256() -> str:
    """Hash of the kernel sources (part of the PTX cache key)."""
    digest = hashlib.sha256()
    for name, text in sorted(read_sources().items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()
