"""The host build of the decode + NMS plugin: ``libyolo_decode_nms.so`` through ctypes.

The library is ``plugins/yolo_decode_nms/decode_nms.cuh`` compiled by the C++ compiler (no
CUDA) with the loop executor, by ``setup.py`` (``pip install -e .`` builds it in place). It is
the same algorithm the GPU kernel runs, and gives the same detections as the numpy fallback
:func:`yolov3_trt.postprocess.postprocess`, which the tests check on randomised heads.

Contract: :func:`postprocess_host` ``(outputs, decode: DecodeSpec, nms: NmsSpec)`` is
interchangeable with :func:`yolov3_trt.postprocess.postprocess`: the same arguments, the same
checks (:func:`~yolov3_trt.postprocess.check_outputs`), the same detections. :func:`run_host`
is the library's own interface: a :class:`~yolov3_trt.plugin.params.PluginConfig` in, the
plugin's fixed-size outputs out. Missing or stale libraries are a PluginError with the build
command; the library's out-of-memory status is an EnvironmentFailure, other statuses ValueError.
"""
from __future__ import annotations

import ctypes
import dataclasses
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import EnvironmentFailure
from ..postprocess import DEFAULT_NMS, ImageDetections, check_outputs
from ..specs import DecodeSpec, NmsSpec
from .params import PluginConfig, YoloParamsStruct
from .sources import BUILD_HINT, LIBRARY_NAME, PluginError

ABI_VERSION = 1  # YOLO_ABI_VERSION in yolo_decode_nms_host.h
_STATUS = {1: "parameters out of range", 2: "bad argument", 3: "out of memory"}
_lock = threading.Lock()
_library: ctypes.CDLL | None = None


def library_path() -> Path:
    """Where the built library lives: beside this module."""
    return Path(__file__).resolve().parent / LIBRARY_NAME


def load_library() -> ctypes.CDLL:
    """The host library (loaded once); PluginError saying how to build it when it is missing."""
    global _library
    with _lock:
        if _library is not None:
            return _library
        path = library_path()
        if not path.is_file():
            raise PluginError(f"{path}: the decode + NMS host library is not built; {BUILD_HINT}")
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as err:
            raise PluginError(f"{path}: cannot be loaded ({err}); rebuild it: {BUILD_HINT}") from None
        lib.yolo_decode_nms_abi_version.restype = ctypes.c_int
        if lib.yolo_decode_nms_abi_version() != ABI_VERSION:
            raise PluginError(f"{path}: built from other sources (ABI {lib.yolo_decode_nms_abi_version()}, "
                              f"expected {ABI_VERSION}); rebuild it: {BUILD_HINT}")
        lib.yolo_decode_nms_params_size.restype = ctypes.c_int
        if lib.yolo_decode_nms_params_size() != ctypes.sizeof(YoloParamsStruct):
            raise PluginError(f"{path}: YoloParams is {lib.yolo_decode_nms_params_size()} bytes there, "
                              f"{ctypes.sizeof(YoloParamsStruct)} in params.py; rebuild it: {BUILD_HINT}")
        lib.yolo_decode_nms_run.restype = ctypes.c_int
        lib.yolo_decode_nms_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.c_void_p]
        _library = lib
        return lib


def available() -> bool:
    """Whether the host library is built and loads."""
    try:
        load_library()
    except PluginError:
        return False
    return True


def run_host(outputs: Sequence[np.ndarray], config: PluginConfig, *, threads: int = 1
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the host build on head outputs, with the plugin's fixed-size outputs.

    Args:
        outputs: one ``(B, A*(5+C), H, W)`` array per head, float32 or float16 (float16 is read
            as the GPU kernel reads it; other dtypes are converted to float32).
        config: the compiled-in constants (grids must match the outputs).
        threads: logical threads of the host executor (any count gives the same result).

    Returns:
        ``num_dets (B, 1) int32, boxes (B, K, 4) float32, scores (B, K) float32,
        classes (B, K) int32`` with ``K = config.max_det``; slots past ``num_dets`` hold zero boxes and
        scores and class -1 (as the end2end graph).
    """
    lib = load_library()
    fp16 = all(np.asarray(o).dtype == np.float16 for o in outputs)
    dtype = np.float16 if fp16 else np.float32
    arrays = [np.ascontiguousarray(o, dtype=dtype) for o in outputs]
    if len(arrays) != len(config.anchors):
        raise ValueError(f"got {len(arrays)} outputs for {len(config.anchors)} heads")
    for i, (arr, expected) in enumerate(zip(arrays, config.decode.head_shapes())):
        if arr.ndim != 4 or arr.shape[1:] != expected or arr.shape[0] != arrays[0].shape[0]:
            raise ValueError(f"output {i} has shape {arr.shape}, expected (B, {', '.join(map(str, expected))})")
    batch, k = arrays[0].shape[0], config.max_det
    num_dets = np.zeros((batch, 1), np.int32)
    boxes = np.zeros((batch, k, 4), np.float32)
    scores = np.zeros((batch, k), np.float32)
    classes = np.zeros((batch, k), np.int32)
    params = config.to_struct()
    heads = (ctypes.c_void_p * len(arrays))(*(a.ctypes.data for a in arrays))
    status = lib.yolo_decode_nms_run(ctypes.byref(params), heads, int(fp16), batch, int(threads),
                                     num_dets.ctypes.data, boxes.ctypes.data, scores.ctypes.data,
                                     classes.ctypes.data)
    if status == 3:  # out of memory: the machine's failure, not the caller's (exit 1)
        raise EnvironmentFailure(f"yolo_decode_nms_run failed: {_STATUS[3]}")
    if status != 0:
        raise ValueError(f"yolo_decode_nms_run failed: {_STATUS.get(status, status)}")
    return num_dets, boxes, scores, classes


def postprocess_host(outputs: Sequence[np.ndarray], decode: DecodeSpec, nms: NmsSpec = DEFAULT_NMS, *,
                     threads: int = 1) -> list[ImageDetections]:
    """Drop-in for :func:`yolov3_trt.postprocess.postprocess` on the host library: same arguments,
    same checks, same detections (per image: boxes (K, 4) float32 xyxy in network pixels,
    scores (K,) float32, class ids (K,) int32). ``threads``: the host executor's logical threads
    (any count gives the same result)."""
    if not isinstance(nms, NmsSpec):
        raise TypeError(f"nms must be an NmsSpec, got {type(nms).__name__}")
    outputs = [np.asarray(o) for o in outputs]
    check_outputs(outputs, decode)
    config = PluginConfig(decode, dataclasses.replace(nms, pre_nms_top_k=nms.top_k_for(decode)))
    num_dets, boxes, scores, classes = run_host(outputs, config, threads=threads)
    return [(boxes[b, :n].copy(), scores[b, :n].copy(), classes[b, :n].copy())
            for b, n in enumerate(num_dets[:, 0].tolist())]
