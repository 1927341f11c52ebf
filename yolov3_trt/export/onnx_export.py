"""Export a :class:`~yolov3_trt.model.yolov3.YoloV3` to ONNX, with the metadata runtimes need.

Three flavours: ``raw`` (one output per [yolo] head, Darknet's layout; decode + NMS run outside,
on the CPU), ``end2end`` (decode + NMS appended with standard ONNX ops, EfficientNMS-style
outputs) and ``plugin`` (decode + NMS as one node of the CUDA plugin, same outputs; TensorRT
>= 10.9 only, see :mod:`.plugin_node`). The batch dimension is dynamic unless a batch size is given; the
input size is fixed (the decode constants depend on it).
"""
from __future__ import annotations

import copy
import io
import logging
import numbers
import os
import warnings
from typing import Sequence

import onnx
import torch

from ..darknet.layers import MAX_ACTIVATION_BYTES
from ..errors import YoloV3TrtError
from ..fileio import atomic_path
from ..metadata import ModelMetadata
from ..model.yolov3 import YoloV3
from ..plugin.params import DEFAULT_DEVICE_CAPACITY
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_PRE_NMS_TOP_K
from ..specs import NmsSpec
from ..vocab import Flavour
from .end2end import append_end2end
from .plugin_node import append_plugin

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
MIN_OPSET = 17  # the end2end and plugin tails are written for opset 17's operator set and newer
INPUT_NAME = "images"


def supported_opsets() -> range:
    """The opsets export can write here: 17 up to the newest both the installed torch exporter and
    the installed onnx know (torch 2.14 and onnx 1.23: 17..23)."""
    try:
        from torch.onnx._constants import ONNX_MAX_OPSET as torch_max  # private, but the exporter's own limit
    except ImportError:
        torch_max = 18  # torch 2.1's maximum, the oldest torch setup.py allows
    return range(MIN_OPSET, min(int(torch_max), onnx.defs.onnx_opset_version()) + 1)


def check_opset(opset: int) -> None:
    """YoloV3TrtError naming the supported range unless ``opset`` is in it."""
    opsets = supported_opsets()
    if isinstance(opset, bool) or not isinstance(opset, numbers.Integral) or opset not in opsets:
        raise YoloV3TrtError(f"opset {opset!r} is not supported: yolov3_trt exports opset {opsets[0]} to "
                             f"{opsets[-1]} here (torch {torch.__version__.split('+')[0]}, onnx {onnx.__version__})")


# Tracing holds about twice the layer outputs of the traced batch (measured: yolov3-tiny at
# 1024 -> 2048 px adds 0.56 GiB of outputs and 1.2 GB of peak RSS).
TRACE_MEMORY_FACTOR = 2


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation here (Linux MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_export_memory(network, width: int, height: int, batch: int = 1) -> None:
    """YoloV3TrtError with the numbers when tracing ``network`` at this size cannot fit in memory here:
    the process would be killed (or torch's allocator fail) minutes in, with no message."""
    outputs = batch * network.activation_bytes(width, height)  # also refuses sizes over the hard limits
    if outputs > MAX_ACTIVATION_BYTES:
        raise YoloV3TrtError(f"batch {batch} at input {width}x{height}: the layer outputs would take "
                             f"{outputs / 2**30:.1f} GiB, over the {MAX_ACTIVATION_BYTES // 2**30} GiB limit; "
                             "export a dynamic batch or a smaller size")
    need, free = TRACE_MEMORY_FACTOR * outputs, available_memory()
    if free is not None and need > free:
        raise YoloV3TrtError(f"exporting at input {width}x{height} (batch {batch}) needs about {need / 2**30:.1f} GiB "
                             f"of memory ({TRACE_MEMORY_FACTOR}x its {outputs / 2**30:.1f} GiB of layer outputs), "
                             f"{free / 2**30:.1f} GiB is available here: use a smaller size")


def fuse_batchnorm(model: YoloV3) -> YoloV3:
    """A copy of ``model`` with every BatchNorm folded into its convolution (eval-mode maths)."""
    fused = copy.deepcopy(model).eval()
    for block in fused.layers:
        bn = getattr(block, "bn", None)
        if bn is None:
            continue
        conv = block.conv
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        new = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                              groups=conv.groups, bias=True)
        with torch.no_grad():
            new.weight.copy_(conv.weight * scale[:, None, None, None])
            new.bias.copy_(bn.bias - bn.running_mean * scale)
        block.conv, block.bn = new, None
    return fused


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the constant shape arithmetic the torch exporter leaves (e.g. around Pad)."""
    try:
        import onnxslim
    except ImportError:
        logger.info("onnxslim not installed: exporting without simplification")
        return model
    return onnxslim.slim(model)


def export_onnx(model: YoloV3, path: str | os.PathLike, names: Sequence[str], *, flavour: str = "raw",
                size: tuple[int, int] | None = None, batch: int | None = None, opset: int = DEFAULT_OPSET,
                conf: float = DEFAULT_CONF, iou: float = DEFAULT_IOU, max_det: int = DEFAULT_MAX_DET,
                pre_nms_top_k: int | None = None, resize: str = "letterbox",
                weights_sha256: str = "", source: str = "", simplify: bool = True) -> ModelMetadata:
    """Write ``model`` as ONNX to ``path`` (atomically) and return the metadata stored in it.

    ``size`` is (width, height), default the cfg's; ``batch`` None means a dynamic batch axis.
    ``pre_nms_top_k`` None: 3840 for end2end (TensorRT's TopK limit), 1024 for plugin (the
    kernel keeps its candidates in 48 KB of shared memory: at most 1866).
    """
    check_opset(opset)
    if flavour not in Flavour.values():
        raise YoloV3TrtError(f"unknown flavour {flavour!r}: use {Flavour.describe()}")
    if not model.heads:
        raise YoloV3TrtError(f"{model.cfg.source} has no [yolo] layers: nothing to export as a detector")
    if len(names) != model.num_classes:
        raise YoloV3TrtError(f"{len(names)} class names for a model with {model.num_classes} classes")
    if pre_nms_top_k is None:
        pre_nms_top_k = DEFAULT_DEVICE_CAPACITY if flavour == Flavour.PLUGIN else DEFAULT_PRE_NMS_TOP_K
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1):
        raise YoloV3TrtError(f"batch {batch!r} must be an integer >= 1 (None: a dynamic batch axis)")
    width, height = size or model.input_size
    decode = model.decode_spec((width, height))  # validates the size for this cfg (and its hard limits)
    check_export_memory(model.network, width, height, batch or 1)  # before torch allocates anything
    outputs = [f"head{i}" for i in range(len(model.heads))]
    example = torch.zeros(batch or 1, model.network.net.channels, height, width)
    dynamic = None if batch else {INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation chatter
        torch.onnx.export(fuse_batchnorm(model), (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=outputs, dynamic_axes=dynamic,
                          do_constant_folding=True)
    graph = onnx.load_from_string(buffer.getvalue())
    if simplify:
        graph = _simplify(graph)
    metadata = ModelMetadata.from_model(
        model, names, (width, height), flavour=flavour, resize=resize, weights_sha256=weights_sha256,
        source=source, **({"conf": conf, "iou": iou, "max_det": max_det, "pre_nms_top_k": pre_nms_top_k}
                          if flavour != Flavour.RAW else {}))
    if flavour != Flavour.RAW:
        try:
            nms = NmsSpec(conf=conf, iou=iou, max_det=max_det, pre_nms_top_k=pre_nms_top_k)
            (append_end2end if flavour == Flavour.END2END else append_plugin)(graph, decode, nms)
        except ValueError as err:
            raise YoloV3TrtError(str(err) if flavour == Flavour.END2END else f"--flavour plugin: {err}") from None
    graph.producer_name, graph.producer_version = "yolov3_trt", _version()
    del graph.metadata_props[:]
    for key, value in metadata.to_props().items():
        graph.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(graph, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(graph, os.fspath(tmp))
    return metadata


def _version() -> str:
    from .. import __version__
    return __version__
