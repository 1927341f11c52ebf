"""Append the decode + NMS plugin node to a raw YOLOv3 ONNX graph (``--flavour plugin``).

The node is what TensorRT's ONNX parser maps to the quickly deployable plugin registered by
:func:`yolov3_trt.plugin.trt_plugin.register`: op_type :func:`~yolov3_trt.plugin.trt_plugin.op_type`
(in the ``yolov3_trt`` domain, so ``onnx.checker`` accepts the custom op), string attributes
``plugin_namespace`` and ``plugin_version``, ``aot = 1`` (use the AOT implementation: the kernel's
PTX goes into the engine, which then runs without Python), and the model's decode constants.
Its outputs follow the EfficientNMS convention, like the end2end graph's.

Only TensorRT (>= 10.9, with the plugin registered) runs such a file; ONNX Runtime does not know
the op. The same algorithm runs on the CPU as the host post-processor of ``raw`` models.
"""
from __future__ import annotations

import onnx
from onnx import helper

from ..plugin.params import PluginConfig, max_device_capacity
from ..plugin.sources import PluginError
from ..plugin.trt_plugin import PLUGIN_NAMESPACE, PLUGIN_VERSION, node_attributes, op_type
from ..specs import DecodeSpec, NmsSpec
from .end2end import OUTPUT_NAMES, set_efficientnms_outputs


def append_plugin(model: onnx.ModelProto, decode: DecodeSpec, nms: NmsSpec) -> PluginConfig:
    """Replace the head outputs of ``model`` (one per ``decode`` head) by the plugin node's four
    outputs, in place; returns the node's config.

    ValueError when the model does not fit the plugin (head count, anchors per head,
    ``pre_nms_top_k`` None or beyond the kernel's 48 KB of shared memory, bad thresholds).
    """
    graph = model.graph
    raw_outputs = [o.name for o in graph.output]
    if len(raw_outputs) != len(decode.heads):
        raise ValueError(f"graph has {len(raw_outputs)} outputs for {len(decode.heads)} heads")
    if nms.pre_nms_top_k is not None and nms.pre_nms_top_k > max_device_capacity():
        raise ValueError(f"pre_nms_top_k {nms.pre_nms_top_k} does not fit the plugin's shared memory: at most "
                         f"{max_device_capacity()}")
    if nms.max_det < 1:
        raise ValueError(f"max_det must be >= 1, got {nms.max_det}")
    config = PluginConfig(decode, nms)
    try:
        name, attributes = op_type(len(decode.heads)), node_attributes(config)
    except PluginError as err:  # a head count or anchor count the plugin does not take
        raise ValueError(str(err)) from None
    # make_node sorts the attributes by name: the order tensorrt.plugin passes them to aot_impl in
    graph.node.append(helper.make_node(
        name, raw_outputs, list(OUTPUT_NAMES), name="yolo_decode_nms", domain=PLUGIN_NAMESPACE,
        plugin_namespace=PLUGIN_NAMESPACE, plugin_version=PLUGIN_VERSION, aot=1, **attributes))
    if not any(o.domain == PLUGIN_NAMESPACE for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(PLUGIN_NAMESPACE, 1))
    batch = graph.input[0].type.tensor_type.shape.dim[0]
    batch_dim = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    set_efficientnms_outputs(graph, batch_dim, nms.max_det)
    return config
