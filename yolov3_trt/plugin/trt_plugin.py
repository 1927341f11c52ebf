"""TensorRT registration of the decode + NMS kernel as a quickly deployable plugin (QDP, AOT).

``register()`` declares, through ``tensorrt.plugin`` (TensorRT >= 10.9):

- ``register``: inputs are the raw heads (FP32 or FP16, all the same), outputs the
  EfficientNMS convention ``num_dets [B,1] int32, boxes [B,K,4] float32, scores [B,K] float32,
  classes [B,K] int32`` with ``K = max_det``;
- ``autotune``: the two type combinations (FP32 heads or FP16 heads, linear formats);
- ``aot_impl``: the kernel name, its PTX (NVRTC/nvcc at engine-build time, :mod:`.ptx`, with
  every attribute compiled in, since AOT plugins' attributes are not serialised), the launch
  parameters (one block of 256 threads per image, static shared memory only) and the integer
  kernel arguments (the batch). The engine then runs without Python: trtexec, DeepStream, C++.

The ONNX parser maps a node to this plugin by op_type (:func:`op_type`: one per head count,
because a QDP has a fixed input list), ``plugin_namespace``, ``plugin_version`` and ``aot=1``;
``yolov3_trt.export`` writes such nodes (``--flavour plugin``).

What cannot run on a machine without TensorRT and a GPU is only the body of ``register()``
(the decorated functions); everything it computes is in plain functions below
(:func:`config_from_attributes`, :func:`output_shapes`, :func:`aot_kernel`), which the CPU tests
exercise. Annotations are real objects here (no ``from __future__ import annotations``):
``tensorrt.plugin`` inspects them.
"""
import logging
import re
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .params import PluginConfig, launch_dims
from .ptx import compile_ptx
from .sources import KERNEL_NAME, PluginError

logger = logging.getLogger(__name__)

PLUGIN_NAMESPACE = "yolov3_trt"
PLUGIN_NAME = "YoloDecodeNms"     # the three-head op (yolov3, yolov3-spp)
PLUGIN_VERSION = "1"
HEAD_COUNTS = (2, 3)              # yolov3-tiny; yolov3 and yolov3-spp
MIN_AOT_VERSION = (10, 9)

_lock = threading.Lock()
_registered = False


def op_type(num_heads: int) -> str:
    """ONNX op_type (= plugin name) for a model with ``num_heads`` heads."""
    if num_heads not in HEAD_COUNTS:
        raise PluginError(f"the decode + NMS plugin takes {' or '.join(map(str, HEAD_COUNTS))} heads, "
                          f"the model has {num_heads}: export --flavour end2end instead")
    return PLUGIN_NAME if num_heads == 3 else f"{PLUGIN_NAME}{num_heads}"


def plugin_id(num_heads: int) -> str:
    """``namespace::name`` as ``tensorrt.plugin`` keys it."""
    return f"{PLUGIN_NAMESPACE}::{op_type(num_heads)}"


def supports_aot(trt_version: str) -> bool:
    """True for TensorRT >= 10.9, where ``tensorrt.plugin`` has ``aot_impl``."""
    match = re.match(r"(\d+)\.(\d+)", str(trt_version))
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= MIN_AOT_VERSION


def node_attributes(config: PluginConfig) -> Dict[str, object]:
    """The ONNX node attributes that describe ``config`` (besides plugin_namespace/version/aot)."""
    return {
        "num_classes": config.num_classes, "input_w": config.input_size[0], "input_h": config.input_size[1],
        "anchors": [float(v) for head in config.anchors for anchor in head for v in anchor],
        "anchors_per_head": [len(head) for head in config.anchors],
        "strides": [int(v) for stride in config.strides for v in stride],
        "conf": float(config.conf), "iou": float(config.iou), "max_det": config.max_det, "capacity": config.capacity,
    }


def config_from_attributes(num_classes: int, input_w: int, input_h: int, anchors: Sequence[float],
                           anchors_per_head: Sequence[int], strides: Sequence[int], conf: float, iou: float,
                           max_det: int, capacity: int) -> PluginConfig:
    """A :class:`PluginConfig` from the node attributes (as TensorRT hands them to the plugin)."""
    counts = [int(v) for v in np.asarray(anchors_per_head).ravel()]
    flat = [float(v) for v in np.asarray(anchors, dtype=np.float64).ravel()]
    stride_values = [int(v) for v in np.asarray(strides).ravel()]
    if sum(counts) * 2 != len(flat) or len(stride_values) != 2 * len(counts):
        raise PluginError(f"inconsistent plugin attributes: {len(flat)} anchor values for anchors_per_head "
                          f"{counts}, {len(stride_values)} stride values")
    heads, start = [], 0
    for count in counts:
        heads.append(tuple((flat[start + 2 * j], flat[start + 2 * j + 1]) for j in range(count)))
        start += 2 * count
    try:
        return PluginConfig(num_classes=int(num_classes), input_size=(int(input_w), int(input_h)), anchors=tuple(heads),
                            strides=tuple(zip(stride_values[::2], stride_values[1::2])), conf=float(conf),
                            iou=float(iou), max_det=int(max_det), capacity=int(capacity))
    except ValueError as err:
        raise PluginError(f"bad plugin attributes: {err}") from None


def output_shapes(batch, max_det: int) -> List[Tuple[tuple, str]]:
    """(shape, dtype name) of the four outputs; ``batch`` may be a TensorRT shape expression."""
    return [((batch, 1), "int32"), ((batch, max_det, 4), "float32"), ((batch, max_det), "float32"),
            ((batch, max_det), "int32")]


def current_arch() -> str:
    """``compute_XY`` of the current CUDA device (what TensorRT builds for)."""
    try:
        from cuda.bindings import driver
    except ImportError:
        raise PluginError("the plugin needs cuda-python to find the GPU architecture: pip install cuda-python") from None
    try:
        (err,) = driver.cuInit(0)
    except Exception as exc:  # cuda-python raises when libcuda itself is missing
        raise PluginError(f"no CUDA driver to build the plugin for ({type(exc).__name__})") from None
    if int(err) == 0:
        err, device = driver.cuCtxGetDevice()
        if int(err) != 0:
            err, device = driver.cuDeviceGet(0)
    if int(err) != 0:
        raise PluginError(f"no CUDA device to build the plugin for ({err})")
    attr = driver.CUdevice_attribute
    _, major = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
    _, minor = driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
    return f"compute_{major}{minor}"


def aot_kernel(config: PluginConfig, fp16: bool, arch: Optional[str] = None) -> Tuple[str, bytes, int, int]:
    """What ``aot_impl`` returns, without TensorRT: ``(kernel name, PTX, block_x, shared_mem)``.
    The grid is the batch (one block per image), the only integer argument is the batch too."""
    ptx = compile_ptx(config, fp16=fp16, arch=arch or current_arch())
    (_, block) = launch_dims(1)
    return KERNEL_NAME, ptx, block[0], 0  # static __shared__ only: no dynamic shared memory


def register() -> None:
    """Register the plugin ops with ``tensorrt.plugin`` (idempotent; imports tensorrt here).

    PluginError when TensorRT is older than 10.9 (no AOT plugins: build the end2end graph,
    decode in ONNX ops and TensorRT's NMS layer, instead).
    """
    global _registered
    with _lock:
        if _registered:
            return
        import tensorrt as trt

        if not supports_aot(trt.__version__):
            raise PluginError(f"TensorRT {trt.__version__} has no AOT quickly deployable plugins (needs 10.9+): "
                              "use an end2end model")
        import tensorrt.plugin as trtp  # noqa: F401  (only exists from 10.9 on the supported path)

        for heads in HEAD_COUNTS:
            _register_heads(trt, heads)
        _registered = True
        logger.info("registered %s plugins %s (version %s)", PLUGIN_NAMESPACE,
                    ", ".join(op_type(h) for h in HEAD_COUNTS), PLUGIN_VERSION)


def _register_heads(trt, heads: int) -> None:  # pragma: no cover - needs TensorRT >= 10.9
    """The decorated QDP functions for one head count. Runs only under TensorRT (see module doc)."""
    import numpy.typing as npt
    import tensorrt.plugin as trtp

    name = plugin_id(heads)
    dtypes = {"int32": trt.int32, "float32": trt.float32}

    def describe(first, max_det):
        return tuple(trtp.from_shape_expr(shape, dtype=dtypes[dtype])
                     for shape, dtype in output_shapes(first.shape_expr[0], max_det))

    def implement(first, fp16, attrs):
        config = config_from_attributes(**attrs)
        kernel, ptx, block_x, shared = aot_kernel(config, fp16)
        launch = trtp.KernelLaunchParams()
        launch.grid_x = first.shape_expr[0]
        launch.block_x = block_x
        launch.shared_mem = shared
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(first.shape_expr[0])])
        return kernel, ptx, launch, extra

    combination = ", ".join(["FP32|FP16"] * heads + ["INT32", "FP32", "FP32", "INT32"])
    Outputs = Tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc]
    Aot = Tuple[str, bytes, trtp.KernelLaunchParams, trtp.SymExprs]
    F32, I32 = npt.NDArray[np.float32], npt.NDArray[np.int32]

    if heads == 3:
        @trtp.register(name)
        def desc3(head0: trtp.TensorDesc, head1: trtp.TensorDesc, head2: trtp.TensorDesc, num_classes: int,
                  input_w: int, input_h: int, anchors: F32, anchors_per_head: I32, strides: I32, conf: float,
                  iou: float, max_det: int, capacity: int) -> Outputs:
            return describe(head0, max_det)

        @trtp.autotune(name)
        def tune3(head0: trtp.TensorDesc, head1: trtp.TensorDesc, head2: trtp.TensorDesc,
                  outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
            return [trtp.AutoTuneCombination(combination, "LINEAR")]

        @trtp.aot_impl(name)
        def aot3(head0: trtp.TensorDesc, head1: trtp.TensorDesc, head2: trtp.TensorDesc, num_classes: int,
                 input_w: int, input_h: int, anchors: F32, anchors_per_head: I32, strides: I32, conf: float,
                 iou: float, max_det: int, capacity: int, outputs: Tuple[trtp.TensorDesc], tactic: int) -> Aot:
            return implement(head0, head0.dtype == trt.float16, dict(
                num_classes=num_classes, input_w=input_w, input_h=input_h, anchors=anchors,
                anchors_per_head=anchors_per_head, strides=strides, conf=conf, iou=iou, max_det=max_det,
                capacity=capacity))
    else:
        @trtp.register(name)
        def desc2(head0: trtp.TensorDesc, head1: trtp.TensorDesc, num_classes: int, input_w: int, input_h: int,
                  anchors: F32, anchors_per_head: I32, strides: I32, conf: float, iou: float, max_det: int,
                  capacity: int) -> Outputs:
            return describe(head0, max_det)

        @trtp.autotune(name)
        def tune2(head0: trtp.TensorDesc, head1: trtp.TensorDesc,
                  outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
            return [trtp.AutoTuneCombination(combination, "LINEAR")]

        @trtp.aot_impl(name)
        def aot2(head0: trtp.TensorDesc, head1: trtp.TensorDesc, num_classes: int, input_w: int, input_h: int,
                 anchors: F32, anchors_per_head: I32, strides: I32, conf: float, iou: float, max_det: int,
                 capacity: int, outputs: Tuple[trtp.TensorDesc], tactic: int) -> Aot:
            return implement(head0, head0.dtype == trt.float16, dict(
                num_classes=num_classes, input_w=input_w, input_h=input_h, anchors=anchors,
                anchors_per_head=anchors_per_head, strides=strides, conf=conf, iou=iou, max_det=max_det,
                capacity=capacity))
