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
import contextlib
import inspect
import logging
import threading
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from yolov3_trt.tensorrt.device import MIN_AOT_VERSION, supports_aot_plugin  # noqa: F401 (MIN_AOT_VERSION: re-export)

from ..specs import DecodeSpec, NmsSpec
from .params import PluginConfig, launch_dims
from .ptx import compile_ptx
from .sources import KERNEL_NAME, PluginError

logger = logging.getLogger(__name__)

PLUGIN_NAMESPACE = "yolov3_trt"
PLUGIN_NAME = "YoloDecodeNms"     # the three-head op (yolov3, yolov3-spp)
PLUGIN_VERSION = "1"
HEAD_COUNTS = (2, 3)              # yolov3-tiny; yolov3 and yolov3-spp

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


supports_aot = supports_aot_plugin  # TensorRT >= MIN_AOT_VERSION: the one rule, in yolov3_trt.tensorrt.device


ANCHORS_PER_HEAD = 3  # every official YOLOv3 cfg (yolov3, -tiny, -spp, -voc, -openimages)

# One plugin attribute per number, all 1-element arrays of the types TensorRT's ONNX parser
# produces (INT -> int32, FLOAT -> float32). Two defects of TensorRT 10.x's Python layer under
# NumPy 2 decide this (both reproduced with the real bindings, tests/trt_bindings):
# - a scalar-annotated attribute is converted with int(f.data) on a 1-element 1-D array, a
#   TypeError from NumPy 2.4 on (11.x indexes f.data[0]);
# - PluginField.data (pybind11's py::array(length, ptr), built against NumPy 1) returns the first
#   element repeated for any field longer than one, so array attributes (anchors, strides) would
#   arrive as garbage. A 1-element array reads back exactly on every release and NumPy.
# The attributes are sorted by name and kept in that order everywhere: the registered signature
# (hence the creator's field order), the aot_impl signature (TensorRT passes attributes to it by
# position, in the order of the fields it was created with) and the ONNX node (onnx's make_node
# sorts attributes, and the parser hands them over in node order), so the three agree whichever
# order a TensorRT release uses.
# Each attribute is one field of the specs: (dtype, its value in a PluginConfig). The ONNX name of
# NmsSpec.pre_nms_top_k stays "capacity": plugin graphs exported before read back unchanged.
_GLOBAL_ATTRIBUTES = {
    "capacity": (np.int32, lambda c: c.nms.pre_nms_top_k), "conf": (np.float32, lambda c: float(c.nms.conf)),
    "input_h": (np.int32, lambda c: c.decode.input_size[1]), "input_w": (np.int32, lambda c: c.decode.input_size[0]),
    "iou": (np.float32, lambda c: float(c.nms.iou)), "max_det": (np.int32, lambda c: c.nms.max_det),
    "num_classes": (np.int32, lambda c: c.decode.num_classes),
}


def _head_attributes(i: int) -> dict:
    """Head ``i``'s attributes: stride (x, y) and each anchor's (w, h), as (dtype, value getter)."""
    out = {f"stride{i}_x": (np.int32, lambda c: int(c.decode.heads[i].stride[0])),
           f"stride{i}_y": (np.int32, lambda c: int(c.decode.heads[i].stride[1]))}
    for j in range(ANCHORS_PER_HEAD):
        out[f"anchor{i}_{j}_w"] = (np.float32, lambda c, j=j: float(c.decode.heads[i].anchors[j][0]))
        out[f"anchor{i}_{j}_h"] = (np.float32, lambda c, j=j: float(c.decode.heads[i].anchors[j][1]))
    return out


def _attribute_table(num_heads: int) -> dict:
    table = dict(_GLOBAL_ATTRIBUTES)
    for i in range(num_heads):
        table.update(_head_attributes(i))
    return dict(sorted(table.items()))


NODE_ONLY_ATTRIBUTES = ("aot", "plugin_namespace", "plugin_version")  # read by the parser, not the plugin


def attribute_specs(num_heads: int) -> Tuple[Tuple[str, type], ...]:
    """(name, numpy dtype) of the plugin attributes for ``num_heads`` heads, sorted by name."""
    return tuple((name, dtype) for name, (dtype, _) in _attribute_table(num_heads).items())


def node_attributes(config: PluginConfig) -> Dict[str, object]:
    """The ONNX node attributes that describe ``config`` (besides plugin_namespace/version/aot),
    in :func:`attribute_specs` order. PluginError when a head has other than 3 anchors."""
    for i, head in enumerate(config.anchors):
        if len(head) != ANCHORS_PER_HEAD:
            raise PluginError(f"head {i} has {len(head)} anchors; the decode + NMS plugin takes {ANCHORS_PER_HEAD} "
                              "per head: export --flavour end2end instead")
    return {name: value(config) for name, (_, value) in _attribute_table(len(config.anchors)).items()}


def _scalar(name: str, value) -> float:
    """An attribute as TensorRT hands it over (a 1-element array) or as a Python number."""
    array = np.asarray(value)
    if array.size != 1:
        raise PluginError(f"plugin attribute {name} must hold one value, got {array.size}")
    return array.reshape(-1)[0].item()


def _num_heads(names) -> int:
    heads = sorted({int(n[len("stride"):].split("_")[0]) for n in names if n.startswith("stride")})
    if heads != list(range(len(heads))) or not heads:
        raise PluginError(f"plugin attributes: strides for heads {heads}, expected 0, 1, ...")
    return len(heads)


def config_from_attributes(**attrs) -> PluginConfig:
    """A :class:`PluginConfig` from the node attributes (:func:`attribute_specs`, as TensorRT
    hands them to the plugin: 1-element numpy arrays; Python numbers work too)."""
    heads = _num_heads(attrs)
    expected = {name for name, _ in attribute_specs(heads)}
    missing, unknown = sorted(expected - set(attrs)), sorted(set(attrs) - expected)
    if missing or unknown:
        raise PluginError(f"plugin attributes: missing {missing or 'none'}, unknown {unknown or 'none'}")
    v = {name: _scalar(name, value) for name, value in attrs.items()}
    anchors = [[(v[f"anchor{i}_{j}_w"], v[f"anchor{i}_{j}_h"]) for j in range(ANCHORS_PER_HEAD)] for i in range(heads)]
    strides = [(v[f"stride{i}_x"], v[f"stride{i}_y"]) for i in range(heads)]
    try:
        decode = DecodeSpec.from_strides(anchors, strides, int(v["num_classes"]), (v["input_w"], v["input_h"]))
        nms = NmsSpec(conf=float(v["conf"]), iou=float(v["iou"]), max_det=int(v["max_det"]),
                      pre_nms_top_k=int(v["capacity"]))
        return PluginConfig(decode, nms)
    except ValueError as err:
        raise PluginError(f"bad plugin attributes: {err}") from None


def output_shapes(batch, max_det: int) -> List[Tuple[tuple, str]]:
    """(shape, dtype name) of the four outputs; ``batch`` may be a TensorRT shape expression."""
    return [((batch, 1), "int32"), ((batch, max_det, 4), "float32"), ((batch, max_det), "float32"),
            ((batch, max_det), "int32")]


# PTX is compiled for the lowest architecture the engine may run on, never for the build GPU's
# own: PTX JIT-compiles forward only, so an ampere+ engine built on an H100 must still load on an
# A100 or Orin. compute_75 is the oldest GPU TensorRT 10 supports; ampere+ engines start at 8.0
# (measured: the same registers and shared memory, no speed cost).
PTX_ARCH = {"none": "compute_75", "same-cc": "compute_75", "ampere+": "compute_80"}
_target = threading.local()


@contextlib.contextmanager
def ptx_target(hardware_compatibility: str = "none") -> Iterator[str]:
    """Within the block, ``aot_impl`` compiles PTX for the engine's ``hardware_compatibility``
    (the build runs the callbacks in the calling thread). Yields the architecture."""
    if hardware_compatibility not in PTX_ARCH:
        raise PluginError(f"unknown hardware compatibility {hardware_compatibility!r}: use one of "
                          f"{', '.join(PTX_ARCH)}")
    previous = getattr(_target, "arch", None)
    _target.arch = PTX_ARCH[hardware_compatibility]
    try:
        yield _target.arch
    finally:
        _target.arch = previous


def target_arch() -> str:
    """The architecture ``aot_impl`` compiles for now (compute_75 outside :func:`ptx_target`)."""
    return getattr(_target, "arch", None) or PTX_ARCH["none"]


def aot_kernel(config: PluginConfig, fp16: bool, arch: Optional[str] = None) -> Tuple[str, bytes, int, int]:
    """What ``aot_impl`` returns, without TensorRT: ``(kernel name, PTX, block_x, shared_mem)``.
    The grid is the batch (one block per image), the only integer argument is the batch too."""
    ptx = compile_ptx(config, fp16=fp16, arch=arch or target_arch())
    (_, block) = launch_dims(1)
    return KERNEL_NAME, ptx, block[0], 0  # static __shared__ only: no dynamic shared memory


def register() -> None:
    """Register the plugin ops with ``tensorrt.plugin`` (idempotent; imports tensorrt here).

    A registration that failed part-way (e.g. a TensorRT error on the second op) can be retried:
    ops already defined are kept, their autotune and AOT functions are (re)attached.
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
        import tensorrt.plugin as trtp

        for heads in HEAD_COUNTS:
            _register_heads(trt, trtp, heads)
        _registered = True
        logger.info("registered %s plugins %s (version %s)", PLUGIN_NAMESPACE,
                    ", ".join(op_type(h) for h in HEAD_COUNTS), PLUGIN_VERSION)


def _defined(trtp, heads: int) -> bool:
    """Whether ``tensorrt.plugin`` already has the op (from an earlier, possibly partial, register)."""
    namespace, name = plugin_id(heads).split("::")
    return hasattr(trtp.op, namespace) and hasattr(getattr(trtp.op, namespace), name)


def _signature(trtp, heads: int, *, attrs: bool, tail: Sequence[Tuple[str, object]], returns) -> inspect.Signature:
    """The signature ``tensorrt.plugin`` reads: head tensors, attributes (:func:`attribute_specs`), tail."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(f"head{i}", kind, annotation=trtp.TensorDesc) for i in range(heads)]
    if attrs:
        params += [inspect.Parameter(name, kind, annotation=npt.NDArray[dtype])
                   for name, dtype in attribute_specs(heads)]
    params += [inspect.Parameter(name, kind, annotation=annotation) for name, annotation in tail]
    return inspect.Signature(params, return_annotation=returns)


def _with_signature(function, signature: inspect.Signature, name: str):
    function.__signature__ = signature
    function.__name__ = function.__qualname__ = name
    return function


def _register_heads(trt, trtp, heads: int) -> None:
    """Attach the QDP functions for one head count. They are generic over the head count (the
    signatures ``tensorrt.plugin`` inspects are built from :func:`attribute_specs`); TensorRT calls
    the shape function with attributes by keyword and ``autotune``/``aot_impl`` by position."""
    name = plugin_id(heads)
    dtypes = {"int32": trt.int32, "float32": trt.float32}
    Outputs = Tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc]
    specs = attribute_specs(heads)
    n_attrs = len(specs)

    def describe(*tensors, **attrs):
        max_det = int(_scalar("max_det", attrs["max_det"]))
        return tuple(trtp.from_shape_expr(shape, dtype=dtypes[dtype])
                     for shape, dtype in output_shapes(tensors[0].shape_expr[0], max_det))

    def tune(*args):
        combination = ", ".join(["FP32|FP16"] * heads + ["INT32", "FP32", "FP32", "INT32"])
        return [trtp.AutoTuneCombination(combination, "LINEAR")]

    def aot(*args):
        if len(args) != heads + n_attrs + 2:
            raise PluginError(f"{name}: aot_impl got {len(args)} arguments, expected {heads + n_attrs + 2}")
        first = args[0]
        values = dict(zip((n for n, _ in specs), args[heads:heads + n_attrs]))
        for attr, dtype in specs:  # attributes arrive by position: a wrong order shows as a wrong type
            if np.asarray(values[attr]).dtype != dtype:
                raise PluginError(f"{name}: attribute {attr} arrived as {np.asarray(values[attr]).dtype}, expected "
                                  f"{np.dtype(dtype)}: TensorRT passed the attributes in another order")
        config = config_from_attributes(**values)
        kernel, ptx, block_x, shared = aot_kernel(config, first.dtype == trt.float16)
        launch = trtp.KernelLaunchParams()
        launch.grid_x = first.shape_expr[0]
        launch.block_x = block_x
        launch.shared_mem = shared
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(first.shape_expr[0])])
        return kernel, ptx, launch, extra

    tag = op_type(heads)
    if not _defined(trtp, heads):
        trtp.register(name)(_with_signature(describe, _signature(trtp, heads, attrs=True, tail=(), returns=Outputs),
                                            f"{tag}_describe"))
    trtp.autotune(name)(_with_signature(tune, _signature(
        trtp, heads, attrs=False, tail=(("outputs", Tuple[trtp.TensorDesc]),),
        returns=List[trtp.AutoTuneCombination]), f"{tag}_autotune"))
    trtp.aot_impl(name)(_with_signature(aot, _signature(
        trtp, heads, attrs=True, tail=(("outputs", Tuple[trtp.TensorDesc]), ("tactic", int)),
        returns=Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymIntExprs]),
        f"{tag}_aot_impl"))
