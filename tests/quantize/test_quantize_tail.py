"""Quantizing an end2end or plugin graph: the raw heads are quantized, the decode + NMS tail is put
back unquantized with its baked thresholds (ONNX Runtime, which calibration uses, cannot run the
plugin node, and decode + NMS are not to be quantized)."""
from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
from helpers import DARKNET, random_model

from yolov3_trt import Detector
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.metadata import ModelMetadata
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.quantize import quantize_fp16, quantize_int8

QDQ = {"QuantizeLinear", "DequantizeLinear"}


@pytest.fixture(scope="module")
def tailed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tailq")
    model = random_model(folder, "yolov3-tiny")
    for flavour in ("raw", "end2end", "plugin"):
        export_onnx(model, folder / f"{flavour}.onnx", COCO_NAMES, flavour=flavour, size=(96, 96), conf=0.02,
                    max_det=40)
    return folder


def _tail(model: onnx.ModelProto, tail_op: str) -> list[str]:
    return [n.op_type for n in model.graph.node if n.name.startswith("e2e/") or n.op_type == tail_op]


def _tail_untouched(path, original, tail_op: str) -> ModelMetadata:
    """The quantized file's tail has exactly the FP32 export's nodes (no Q/DQ, no casts added)."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    tail = _tail(model, tail_op)
    assert tail.count(tail_op) == 1 and tail == _tail(onnx.load(str(original)), tail_op)
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, path)


def test_int8_cpu_of_end2end_keeps_its_tail_and_thresholds(tailed, tmp_path):
    out = quantize_int8(tailed / "end2end.onnx", tmp_path / "q.onnx", DARKNET / "images", target="cpu", num_images=2,
                        progress=False)
    meta = _tail_untouched(out, tailed / "end2end.onnx", "NonMaxSuppression")
    assert (meta.flavour, meta.conf, meta.max_det) == ("end2end", 0.02, 40)
    assert QDQ <= {n.op_type for n in onnx.load(str(out)).graph.node}
    raw = quantize_int8(tailed / "raw.onnx", tmp_path / "raw-q.onnx", DARKNET / "images", target="cpu",
                        num_images=2, progress=False)
    image = np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    with Detector(out) as tailed_int8, Detector(raw, conf=0.02, max_det=40) as raw_int8:
        a, b = tailed_int8.detect(image), raw_int8.detect(image)
    assert len(a) == len(b) > 0  # the same quantized heads, decoded in the graph or on the host
    np.testing.assert_allclose(np.sort(a.scores), np.sort(b.scores), atol=1e-5)


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None, reason="FP16 needs nvidia-modelopt ([quantize])")
def test_fp16_of_the_plugin_graph_keeps_the_node(tailed, tmp_path):
    out = quantize_fp16(tailed / "plugin.onnx", tmp_path / "p16.onnx")
    meta = _tail_untouched(out, tailed / "plugin.onnx", "YoloDecodeNms2")
    assert meta.flavour == "plugin" and meta.pre_nms_top_k == 1024
    model = onnx.load(str(out))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.node[-1].attribute == onnx.load(str(tailed / "plugin.onnx")).graph.node[-1].attribute
