"""The detection tail cut off and put back from the metadata alone (what ``build --fp16/--int8``
does around quantization): the raw heads, and the tailed graph's outputs, are unchanged."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import random_model

from yolov3_trt.errors import FileError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.export.tail import append_tail_file, strip_tail_file
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


def _run(path, blob):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": blob})


def _metadata(path) -> ModelMetadata:
    return ModelMetadata.from_props({p.key: p.value for p in onnx.load(str(path)).metadata_props}, path)


@pytest.mark.parametrize("flavour", ["end2end", "plugin"])
def test_strip_gives_the_raw_graph(exports, flavour, tmp_path):
    raw = strip_tail_file(exports / f"{flavour}.onnx", tmp_path / "raw.onnx")
    onnx.checker.check_model(onnx.load(str(raw)), full_check=True)
    meta = _metadata(raw)
    assert (meta.flavour, meta.conf, meta.max_det) == ("raw", None, None)
    blob = np.random.default_rng(0).random((2, 3, SIZE[1], SIZE[0]), dtype=np.float32)
    for got, want in zip(_run(raw, blob), _run(exports / "raw.onnx", blob)):
        np.testing.assert_array_equal(got, want)
    assert len(onnx.load(str(raw)).graph.initializer) == len(onnx.load(str(exports / "raw.onnx")).graph.initializer)


def test_append_reproduces_the_exported_tail(exports, tmp_path):
    meta = _metadata(exports / "end2end.onnx")
    tailed = tmp_path / "end2end.onnx"
    back = append_tail_file(exports / "raw.onnx", tailed, "end2end", conf=meta.conf, iou=meta.iou,
                            max_det=meta.max_det, pre_nms_top_k=meta.pre_nms_top_k)
    assert back == _metadata(tailed) and (back.flavour, back.conf, back.max_det) == ("end2end", 0.05, 30)
    blob = np.random.default_rng(1).random((2, 3, SIZE[1], SIZE[0]), dtype=np.float32)
    expected = _run(exports / "end2end.onnx", blob)
    assert expected[0].sum() > 0
    for got, want in zip(_run(tailed, blob), expected):
        np.testing.assert_array_equal(got, want)
    plugged = append_tail_file(exports / "raw.onnx", tmp_path / "plugin.onnx", "plugin", conf=0.05, iou=0.45,
                               max_det=30, pre_nms_top_k=1024)
    assert plugged.flavour == "plugin"
    assert onnx.load(str(tmp_path / "plugin.onnx")).graph.node[-1].attribute == \
        onnx.load(str(exports / "plugin.onnx")).graph.node[-1].attribute


def test_wrong_inputs_are_file_errors(exports, tmp_path):
    with pytest.raises(FileError, match="raw graph: it has no decode"):
        strip_tail_file(exports / "raw.onnx", tmp_path / "x.onnx")
    with pytest.raises(FileError, match="is a end2end graph, not raw"):
        append_tail_file(exports / "end2end.onnx", tmp_path / "x.onnx", "plugin", conf=0.5, iou=0.45, max_det=10,
                         pre_nms_top_k=100)
    with pytest.raises(FileError, match="pre_nms_top_k 3840 does not fit"):
        append_tail_file(exports / "raw.onnx", tmp_path / "x.onnx", "plugin", conf=0.5, iou=0.45, max_det=10,
                         pre_nms_top_k=3840)
    assert not (tmp_path / "x.onnx").exists()
