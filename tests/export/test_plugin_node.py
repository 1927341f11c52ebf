"""export/plugin_node.py: the plugin node's contract (op, domain, attributes, inputs, outputs)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from yolov3_trt.export.plugin_node import append_plugin
from yolov3_trt.plugin import trt_plugin
from yolov3_trt.plugin.params import PluginConfig, max_device_capacity
from yolov3_trt.specs import DecodeSpec, NmsSpec

ANCHORS = (((16.0, 16.0), (16.0, 8.0), (40.0, 30.0)), ((8.0, 8.0), (12.0, 20.0), (24.0, 12.0)))
DECODE = DecodeSpec.from_strides(ANCHORS, ((32, 32), (16, 16)), 3, (96, 64))
NMS = NmsSpec(conf=0.3, iou=0.5, max_det=16, pre_nms_top_k=24)


def raw_model(decode: DecodeSpec = DECODE, batch="batch") -> onnx.ModelProto:
    """A raw graph whose head outputs are its inputs (Identity), shaped as ``decode`` says."""
    names = [f"head{i}" for i in range(len(decode.heads))]
    inputs = [helper.make_tensor_value_info(f"in{i}", TensorProto.FLOAT, [batch, *s])
              for i, s in enumerate(decode.head_shapes())]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, *s])
               for n, s in zip(names, decode.head_shapes())]
    nodes = [helper.make_node("Identity", [f"in{i}"], [n]) for i, n in enumerate(names)]
    model = helper.make_model(helper.make_graph(nodes, "raw", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_node_outputs_and_attributes():
    model = raw_model()
    config = append_plugin(model, DECODE, NMS)
    assert config == PluginConfig(DECODE, NMS)
    node = model.graph.node[-1]
    assert (node.op_type, node.domain, node.name) == ("YoloDecodeNms2", "yolov3_trt", "yolo_decode_nms")
    assert list(node.input) == ["head0", "head1"]
    assert list(node.output) == ["num_dets", "boxes", "scores", "classes"]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert (attrs.pop("plugin_namespace"), attrs.pop("plugin_version"), attrs.pop("aot")) == (b"yolov3_trt", b"1", 1)
    assert list(attrs) == sorted(attrs) == [name for name, _ in trt_plugin.attribute_specs(2)]
    kinds = {a.name: a.type for a in node.attribute}
    for name, dtype in trt_plugin.attribute_specs(2):
        assert kinds[name] == (onnx.AttributeProto.INT if dtype == np.int32 else onnx.AttributeProto.FLOAT), name
    assert (attrs["input_w"], attrs["input_h"], attrs["num_classes"]) == (96, 64, 3)
    assert (attrs["stride1_x"], attrs["stride1_y"], attrs["anchor1_2_w"], attrs["anchor1_2_h"]) == (16, 16, 24.0, 12.0)
    assert (attrs["max_det"], attrs["capacity"]) == (16, 24) and attrs["conf"] == pytest.approx(0.3)
    assert trt_plugin.config_from_attributes(**attrs) == PluginConfig(
        DECODE, NmsSpec(float(np.float32(0.3)), 0.5, 16, 24))        # float attributes are float32
    assert any(o.domain == "yolov3_trt" for o in model.opset_import)
    shapes = {o.name: ([d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim], o.type.tensor_type.elem_type)
              for o in model.graph.output}
    assert shapes == {"num_dets": (["batch", 1], TensorProto.INT32), "boxes": (["batch", 16, 4], TensorProto.FLOAT),
                      "scores": (["batch", 16], TensorProto.FLOAT), "classes": (["batch", 16], TensorProto.INT32)}
    onnx.checker.check_model(model)


def test_fixed_batch_is_kept():
    model = raw_model(batch=4)
    append_plugin(model, DECODE, NMS)
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim] == [4, 1]


@pytest.mark.parametrize("decode, nms, message", [
    (DecodeSpec.from_strides([a[:2] for a in ANCHORS], ((32, 32), (16, 16)), 3, (96, 64)), NMS, "2 anchors.*end2end"),
    (DECODE, NmsSpec(0.3, 0.5, 16, max_device_capacity() + 1), "shared memory"),
    (DECODE, NmsSpec(0.3, 0.5, 0, 24), "max_det must be >= 1"),
    (DECODE, NmsSpec(0.3, 0.5, 16, None), "pre_nms_top_k"),
    (DecodeSpec.from_strides(ANCHORS * 2, ((32, 32), (16, 16)) * 2, 3, (96, 64)), NMS, "outputs for 4 heads"),
])
def test_models_the_plugin_does_not_take_are_refused(decode, nms, message):
    with pytest.raises(ValueError, match=message):
        append_plugin(raw_model(DECODE), decode, nms)
