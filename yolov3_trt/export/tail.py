"""The detection tail (``end2end`` or ``plugin``) put on, or taken off, a raw graph from its metadata.

Quantization runs the graph on ONNX Runtime (calibration, AutoCast's range check), which cannot
run the plugin node and should not quantize decode and NMS anyway. So ``quantize`` cuts a tailed
graph back to its raw heads (:func:`strip_tail`), quantizes those and appends the tail afterwards
(:func:`append_tail`). Both work from the ``yolov3_trt.*`` metadata alone (anchors, strides,
classes, input size), with no torch model; the caller keeps the file's metadata.
"""
from __future__ import annotations

import dataclasses

import onnx

from ..metadata import ModelMetadata
from ..specs import NmsSpec
from ..vocab import Flavour
from .end2end import append_end2end
from .plugin_node import append_plugin

TAILS = (Flavour.END2END.value, Flavour.PLUGIN.value)


def head_names(metadata: ModelMetadata) -> list[str]:
    """The raw graph's output names (``yolov3_trt.export`` names them head0, head1, ...)."""
    return [f"head{i}" for i in range(len(metadata.anchors))]


def strip_tail(model: onnx.ModelProto, metadata: ModelMetadata) -> onnx.ModelProto:
    """``model`` cut back to its raw head outputs, in place: the nodes and initializers only the
    tail used are removed, the outputs become head0.. with the raw layout ``(B, A*(5+C), H, W)``."""
    graph = model.graph
    names = head_names(metadata)
    producers = {out: node for node in graph.node for out in node.output}
    if any(n not in producers for n in names):
        raise ValueError(f"the graph has no tensors {', '.join(n for n in names if n not in producers)}: "
                         "not a yolov3_trt export")
    needed, stack = set(), list(names)
    while stack:  # everything the heads depend on
        node = producers.get(stack.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            stack.extend(node.input)
    kept = [node for node in graph.node if id(node) in needed]
    used = {name for node in kept for name in node.input}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    shapes = metadata.decode_spec().head_shapes()
    del graph.output[:]
    graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [batch_dim, *shape])
                        for name, shape in zip(names, shapes))
    kept_outputs = {o for node in kept for o in node.output} | {i.name for i in graph.input}
    value_info = [v for v in graph.value_info if v.name in kept_outputs and v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    return model


def append_tail(model: onnx.ModelProto, metadata: ModelMetadata, flavour: str, *, conf: float, iou: float,
                max_det: int, pre_nms_top_k: int) -> ModelMetadata:
    """Append the ``flavour`` tail to a raw ``model`` in place; returns the tailed model's metadata.
    ValueError when the model does not fit it (see :func:`.plugin_node.append_plugin`)."""
    if flavour not in TAILS:
        raise ValueError(f"unknown tail {flavour!r}: use {' or '.join(TAILS)}")
    decode = metadata.decode_spec()
    nms = NmsSpec(conf=float(conf), iou=float(iou), max_det=int(max_det), pre_nms_top_k=int(pre_nms_top_k))
    (append_end2end if flavour == Flavour.END2END else append_plugin)(model, decode, nms)
    return dataclasses.replace(metadata, flavour=flavour, conf=nms.conf, iou=nms.iou, max_det=nms.max_det,
                               pre_nms_top_k=nms.pre_nms_top_k)
