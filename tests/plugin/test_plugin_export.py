"""``export --flavour plugin``: the ONNX node TensorRT maps to the plugin, and its attributes
describe the model so that the kernel (here: its host build) gives the reference detections."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import DARKNET

from yolov3_trt.cli.common import run
from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
from yolov3_trt.export.__main__ import main as export_main
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.model.yolov3 import YoloV3
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.plugin import host, trt_plugin
from yolov3_trt.postprocess import postprocess
from yolov3_trt.preprocess import preprocess, read_image
from yolov3_trt.specs import NmsSpec


def _model(name, tmp_path):
    model = YoloV3.from_cfg(name).eval()
    path = tmp_path / f"{name}.weights"
    write_darknet_weights(path, model.network, random_darknet_weights(model.network, 0, head_gain=0.15))
    return model.load_darknet_weights(path)


def _attributes(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
@pytest.mark.parametrize("name, heads", [("yolov3-tiny", 2), ("yolov3", 3)])
def test_plugin_node_reproduces_the_reference(name, heads, tmp_path):
    model = _model(name, tmp_path)
    raw, plugged = tmp_path / "raw.onnx", tmp_path / "plugin.onnx"
    export_onnx(model, raw, COCO_NAMES, size=(320, 320))
    meta = export_onnx(model, plugged, COCO_NAMES, flavour="plugin", size=(320, 320), conf=0.2, iou=0.5, max_det=50)
    assert (meta.flavour, meta.conf, meta.iou, meta.max_det, meta.pre_nms_top_k) == ("plugin", 0.2, 0.5, 50, 1024)
    graph = onnx.load(str(plugged))
    node = graph.graph.node[-1]
    attrs = _attributes(node)
    assert node.op_type == trt_plugin.op_type(heads) and node.domain == trt_plugin.PLUGIN_NAMESPACE
    assert attrs["plugin_namespace"].decode() == trt_plugin.PLUGIN_NAMESPACE
    assert attrs["plugin_version"].decode() == trt_plugin.PLUGIN_VERSION and attrs["aot"] == 1
    assert [o.name for o in graph.graph.output] == ["num_dets", "boxes", "scores", "classes"]
    assert list(node.input) == [o.name for o in onnx.load(str(raw)).graph.output]
    config = trt_plugin.config_from_attributes(**{k: v for k, v in attrs.items()
                                                  if k not in ("plugin_namespace", "plugin_version", "aot")})
    images = [read_image(DARKNET / "images" / f"{n}.jpg") for n in ("dog", "horses")]
    outputs = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"]).run(
        None, {"images": preprocess(images, (320, 320))[0]})
    num_dets, boxes, scores, classes = host.run_host(outputs, config)
    expected = postprocess(outputs, model.decode_spec((320, 320)), NmsSpec(0.2, 0.5, 50, 1024))
    assert sum(len(e[0]) for e in expected) > 0
    for b, (eb, es, ec) in enumerate(expected):
        n = num_dets[b, 0]
        np.testing.assert_array_equal(scores[b, :n], es)
        np.testing.assert_array_equal(classes[b, :n], ec)
        np.testing.assert_allclose(boxes[b, :n], eb, rtol=1e-6, atol=1e-4)


def test_export_cli_plugin(tmp_path, capsys):
    _model("yolov3-tiny", tmp_path)
    weights = tmp_path / "yolov3-tiny.weights"
    out = tmp_path / "tiny-plugin.onnx"
    assert run(export_main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "320", "--flavour", "plugin",
                             "--pre-nms-top-k", "1500", "--output", str(out)]) == 0
    assert "plugin, input 320x320" in capsys.readouterr().out
    assert _attributes(onnx.load(str(out)).graph.node[-1])["capacity"] == 1500


@pytest.mark.parametrize("argv, words", [
    (["--pre-nms-top-k", "3840"], "--flavour plugin: pre_nms_top_k 3840 does not fit the plugin's shared memory"),
    (["--pre-nms-top-k", "0"], "--pre-nms-top-k must be >= 1"),
])
def test_export_cli_plugin_errors(argv, words, tmp_path, capsys):
    _model("yolov3-tiny", tmp_path)
    out = tmp_path / "out.onnx"
    code = run(export_main, ["--cfg", "yolov3-tiny", "--weights", str(tmp_path / "yolov3-tiny.weights"),
                             "--flavour", "plugin", *argv, "--output", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not out.exists() and list(tmp_path.glob(".*")) == []
