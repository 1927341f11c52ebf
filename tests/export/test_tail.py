"""The detection tail cut off and put back from the metadata alone (what ``quantize`` does around
calibration): the raw heads, and the tailed graph's outputs, are unchanged."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import random_model

from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.export.tail import append_tail, strip_tail
from yolov3_trt.metadata import ModelMetadata
from yolov3_trt.names import COCO_NAMES

SIZE = (160, 128)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tail")
    model = random_model(folder, "yolov3-tiny")
    for flavour in ("raw", "end2end", "plugin"):
        export_onnx(model, folder / f"{flavour}.onnx", COCO_NAMES, flavour=flavour, size=SIZE, conf=0.05,
                    max_det=30)
    return folder


def _load(path) -> tuple[onnx.ModelProto, ModelMetadata]:
    model = onnx.load(str(path))
    return model, ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, path)


def _run(model: onnx.ModelProto, blob):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": blob})


@pytest.mark.parametrize("flavour", ["end2end", "plugin"])
def test_strip_gives_the_raw_graph(exports, flavour):
    model, meta = _load(exports / f"{flavour}.onnx")
    raw, _ = _load(exports / "raw.onnx")
    strip_tail(model, meta)
    onnx.checker.check_model(model, full_check=True)
    assert [o.name for o in model.graph.output] == [o.name for o in raw.graph.output]
    assert len(model.graph.initializer) == len(raw.graph.initializer)
    blob = np.random.default_rng(0).random((2, 3, SIZE[1], SIZE[0]), dtype=np.float32)
    for got, want in zip(_run(model, blob), _run(raw, blob)):
        np.testing.assert_array_equal(got, want)


def test_append_reproduces_the_exported_tail(exports):
    model, raw_meta = _load(exports / "raw.onnx")
    e2e, meta = _load(exports / "end2end.onnx")
    back = append_tail(model, raw_meta, "end2end", conf=meta.conf, iou=meta.iou, max_det=meta.max_det,
                       pre_nms_top_k=meta.pre_nms_top_k)
    assert (back.flavour, back.conf, back.max_det, back.pre_nms_top_k) == ("end2end", 0.05, 30, meta.pre_nms_top_k)
    blob = np.random.default_rng(1).random((2, 3, SIZE[1], SIZE[0]), dtype=np.float32)
    expected = _run(e2e, blob)
    assert expected[0].sum() > 0
    for got, want in zip(_run(model, blob), expected):
        np.testing.assert_array_equal(got, want)
    plugged, _ = _load(exports / "raw.onnx")
    assert append_tail(plugged, raw_meta, "plugin", conf=0.05, iou=0.45, max_det=30,
                       pre_nms_top_k=1024).flavour == "plugin"
    assert plugged.graph.node[-1].attribute == onnx.load(str(exports / "plugin.onnx")).graph.node[-1].attribute


def test_what_does_not_fit_is_refused(exports):
    model, meta = _load(exports / "raw.onnx")
    with pytest.raises(ValueError, match="unknown tail"):
        append_tail(model, meta, "fancy", conf=0.5, iou=0.45, max_det=10, pre_nms_top_k=100)
    with pytest.raises(ValueError, match="pre_nms_top_k 3840 does not fit"):
        append_tail(model, meta, "plugin", conf=0.5, iou=0.45, max_det=10, pre_nms_top_k=3840)
    broken, broken_meta = _load(exports / "end2end.onnx")
    for node in broken.graph.node:
        node.output[:] = [o.replace("head0", "renamed") for o in node.output]
    with pytest.raises(ValueError, match="no tensors head0"):
        strip_tail(broken, broken_meta)
