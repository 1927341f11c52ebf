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
import os
import warnings
from typing import Sequence

import onnx
import torch

from ..errors import YoloV3TrtError
from ..fileio import atomic_path
from ..metadata import ModelMetadata
from ..model.yolov3 import YoloV3
from ..postprocess import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, DEFAULT_PRE_NMS_TOP_K
from .end2end import append_end2end
from ..plugin.params import DEFAULT_DEVICE_CAPACITY
from .plugin_node import append_plugin

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
INPUT_NAME = "images"


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
    if flavour not in ("raw", "end2end", "plugin"):
        raise YoloV3TrtError(f"unknown flavour {flavour!r}: use raw, end2end or plugin")
    if not model.heads:
        raise YoloV3TrtError(f"{model.cfg.source} has no [yolo] layers: nothing to export as a detector")
    if len(names) != model.num_classes:
        raise YoloV3TrtError(f"{len(names)} class names for a model with {model.num_classes} classes")
    if opset < 17:
        raise YoloV3TrtError(f"opset {opset} is too old: yolov3_trt exports opset 17 or newer")
    if pre_nms_top_k is None:
        pre_nms_top_k = DEFAULT_DEVICE_CAPACITY if flavour == "plugin" else DEFAULT_PRE_NMS_TOP_K
    width, height = size or model.input_size
    shapes = model.network.shapes(width, height)  # validates the size for this cfg
    grids = [(shapes[h.layer].output[2], shapes[h.layer].output[1]) for h in model.heads]
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
                          if flavour in ("end2end", "plugin") else {}))
    if flavour == "end2end":
        try:
            append_end2end(graph, model.heads, grids, (width, height), conf=conf, iou=iou, max_det=max_det,
                           pre_nms_top_k=pre_nms_top_k)
        except ValueError as err:
            raise YoloV3TrtError(str(err)) from None
    elif flavour == "plugin":
        try:
            append_plugin(graph, model.heads, grids, (width, height), conf=conf, iou=iou, max_det=max_det,
                          capacity=pre_nms_top_k)
        except ValueError as err:
            raise YoloV3TrtError(f"--flavour plugin: {err}") from None
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
