"""The Detector post-processes raw models with the plugin's host build: same detections as numpy."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import DARKNET, random_model

from yolov3_trt.errors import YoloV3TrtError
from yolov3_trt.export.onnx_export import export_onnx
from yolov3_trt.model.yolov3 import YoloV3
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.plugin import host
from yolov3_trt.preprocess import read_image
from yolov3_trt.runtime.detector import Detector


@pytest.fixture(scope="module")
def raw_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plugin_detector")
    model = random_model(tmp, seed=1, name="tiny.weights")
    path = tmp / "tiny.onnx"
    export_onnx(model, path, COCO_NAMES, size=(320, 320))
    return path


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
@pytest.mark.parametrize("conf", [0.01, 0.3])
def test_plugin_and_numpy_postprocessors_agree(raw_model, conf):
    images = [read_image(DARKNET / "images" / f"{n}.jpg") for n in ("dog", "eagle", "person")]
    with Detector(raw_model, conf=conf) as plugin, Detector(raw_model, conf=conf, postprocessor="numpy") as numpy:
        assert plugin.postprocessor == "plugin host library" and numpy.postprocessor == "numpy"
        got, expected = plugin.detect_batch(images), numpy.detect_batch(images)
    assert sum(len(d.scores) for d in expected) > 0
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.class_ids, e.class_ids)
        np.testing.assert_array_equal(g.scores, e.scores)
        np.testing.assert_allclose(g.boxes, e.boxes, rtol=1e-6, atol=1e-4)


def test_postprocessor_choice_errors(raw_model, monkeypatch, tmp_path):
    with pytest.raises(YoloV3TrtError, match="unknown postprocessor 'cuda'"):
        Detector(raw_model, postprocessor="cuda")
    monkeypatch.setattr(host, "_library", None)
    monkeypatch.setattr(host, "library_path", lambda: tmp_path / "libyolo_decode_nms.so")
    with pytest.raises(YoloV3TrtError, match="build_ext --inplace"):
        Detector(raw_model, postprocessor="plugin")
    with Detector(raw_model) as detector:   # auto: falls back to numpy
        assert detector.postprocessor == "numpy"


def test_plugin_onnx_on_onnxruntime_says_to_use_tensorrt(tmp_path):
    model = YoloV3.from_cfg("yolov3-tiny").eval()
    path = tmp_path / "plugin.onnx"
    export_onnx(model, path, COCO_NAMES, flavour="plugin", size=(160, 160))
    with pytest.raises(YoloV3TrtError, match="only TensorRT .* runs; export --flavour raw or end2end"):
        Detector(path)


def test_refused_postprocessor_closes_the_loaded_backend(raw_model, monkeypatch):
    from yolov3_trt.runtime.backends import backend_class, choose

    cls = backend_class(choose(raw_model, "auto"))
    closed, original = [], cls.close
    monkeypatch.setattr(cls, "close", lambda self: (closed.append(self), original(self)))
    with pytest.raises(YoloV3TrtError, match="unknown postprocessor"):
        Detector(raw_model, postprocessor="cuda")
    assert len(closed) == 1 and closed[0].closed


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
def test_heads_beyond_the_library_fall_back_to_numpy_or_refuse():
    from yolov3_trt.postprocess import postprocess
    from yolov3_trt.runtime.detector import _choose_postprocessor

    three = [[(10.0, 13.0)] * 3] * 3
    assert _choose_postprocessor("auto", three)[1] == "plugin host library"
    for beyond in ([[(10.0, 13.0)] * 3] * 5, [[(10.0, 13.0)] * 10]):   # 5 heads; 10 anchors in a head
        assert _choose_postprocessor("auto", beyond) == (postprocess, "numpy")
        with pytest.raises(YoloV3TrtError, match="host library takes 1 to 4 heads of 1 to 9 anchors"):
            _choose_postprocessor("plugin", beyond)


@pytest.mark.parametrize("conf", [-0.1, 1.5, float("nan")])
def test_conf_outside_0_1_is_refused(raw_model, conf):
    with pytest.raises(YoloV3TrtError, match=r"not a score threshold in \[0, 1\]"):
        Detector(raw_model, conf=conf)
