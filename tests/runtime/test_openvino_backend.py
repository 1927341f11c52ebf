"""The openvino backend against ONNX Runtime on the same files: FP32 (Darknet's trained yolov3-tiny
on Darknet's photos), the CPU INT8 file, BF16 where the CPU has it; its refusals. The INT8 file
placed for TensorRT runs on OpenVINO measurably less accurately than its Q/DQ define (README
"CPU runtimes": 3.7-3.9 AP50 below FP32 on the shapes model, ONNX Runtime 0.2-0.3): loading it
warns, and nothing asserts it equal."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import DARKNET, random_model

from yolov3_trt import Detector
from yolov3_trt.boxes import box_iou
from yolov3_trt.errors import YoloV3TrtError
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.preprocess import read_image

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                reason='needs OpenVINO: pip install ".[openvino]"')
WEIGHTS = DARKNET / "weights" / "yolov3-tiny.weights"
PHOTOS = ("dog", "eagle", "giraffe", "horses", "kite", "person")


@pytest.fixture(scope="module")
def photos():
    return [read_image(DARKNET / "images" / f"{name}.jpg") for name in PHOTOS]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """fp32 and int8-cpu ONNX of Darknet's trained yolov3-tiny at 416."""
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.quantize import quantize_int8

    if not WEIGHTS.is_file():
        pytest.skip(f"needs Darknet's trained weights at {WEIGHTS}")
    folder = tmp_path_factory.mktemp("ov")
    model = YoloV3.from_cfg("yolov3-tiny").load_darknet_weights(WEIGHTS).eval()
    out = {"fp32": folder / "fp32.onnx"}
    export_onnx(model, out["fp32"], COCO_NAMES, size=(416, 416))
    out["int8-cpu"] = quantize_int8(out["fp32"], folder / "int8-cpu.onnx", DARKNET / "images", target="cpu",
                                    num_images=6, progress=False)
    return out


def _iou(box, boxes):
    return box_iou(box[None], boxes)[0]


def _match(reference, got, max_score: float, *, max_box_px: float | None = None, min_iou: float | None = None,
           margin: float = 0.0) -> None:
    """Every reference detection above conf + margin has a same-class twin in ``got`` (box within
    ``max_box_px`` or at IoU >= ``min_iou``, score within ``max_score``), and the other way round."""
    for ref, out in zip(reference, got):
        for a, b in ((ref, out), (out, ref)):
            for box, score, cls in zip(a.boxes, a.scores, a.class_ids):
                if score <= 0.25 + margin:
                    continue
                same = np.flatnonzero(b.class_ids == cls)
                assert len(same), (cls, score)
                if min_iou is None:
                    error = np.abs(b.boxes[same] - box).max(axis=1)
                    best, ok = same[int(np.argmin(error))], error.min() <= max_box_px
                else:
                    iou = _iou(box, b.boxes[same])
                    best, ok = same[int(np.argmax(iou))], iou.max() >= min_iou
                assert ok and abs(b.scores[best] - score) <= max_score, (cls, score, b.boxes[best], box)


def test_fp32_equals_onnxruntime(files, photos):
    with Detector(files["fp32"], "onnxruntime", conf=0.25) as ort_det, \
            Detector(files["fp32"], "openvino", conf=0.25) as ov_det:
        assert ov_det.backend.startswith("openvino") and "f32" in ov_det.backend
        expected, got = ort_det.detect_batch(photos), ov_det.detect_batch(photos)
    assert [len(e) for e in expected] == [len(g) for g in got] and sum(map(len, got)) == 24
    _match(expected, got, 1e-3, max_box_px=0.5)


def test_int8_cpu_file_equals_onnxruntime_within_int8_tolerance(files, photos):
    with Detector(files["int8-cpu"], "onnxruntime", conf=0.25) as ort_det, \
            Detector(files["int8-cpu"], "openvino", conf=0.25) as ov_det:
        expected, got = ort_det.detect_batch(photos), ov_det.detect_batch(photos)
    # the same quantized graph; the runtimes' integer kernels requantize differently (measured
    # here: scores up to 0.05 apart, a bicycle box 24 px apart of 370), hence IoU 0.8, score 0.06,
    # and detections within 0.05 of the threshold may come and go
    _match(expected, got, 0.06, min_iou=0.8, margin=0.05)


def test_bf16_within_tolerance_of_fp32(files, photos):
    from yolov3_trt.runtime.backends.openvino_backend import cpu_supports_bf16

    if not cpu_supports_bf16():
        pytest.skip("this CPU has no BF16 (OpenVINO reports no BF16 capability)")
    with Detector(files["fp32"], "openvino", conf=0.25) as f32, \
            Detector(files["fp32"], "openvino", conf=0.25, backend_options={"precision": "bf16"}) as bf16:
        assert "bf16" in bf16.backend
        _match(f32.detect_batch(photos), bf16.detect_batch(photos), 0.05, min_iou=0.85, margin=0.05)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("ovsmall")
    model = random_model(folder, "yolov3-tiny")
    export_onnx(model, folder / "raw.onnx", COCO_NAMES, size=(96, 96))
    export_onnx(model, folder / "end2end.onnx", COCO_NAMES, flavour="end2end", size=(96, 96), conf=0.05)
    export_onnx(model, folder / "plugin.onnx", COCO_NAMES, flavour="plugin", size=(96, 96))
    (folder / "garbage.onnx").write_bytes(b"\x00not a model" * 50)
    return folder


def test_end2end_graph_runs(small):
    image = np.random.default_rng(0).integers(0, 255, (70, 120, 3), dtype=np.uint8)
    with Detector(small / "end2end.onnx", "onnxruntime") as a, Detector(small / "end2end.onnx", "openvino") as b:
        x, y = a.detect(image), b.detect(image)
    assert len(x) == len(y) > 0
    np.testing.assert_allclose(np.sort(x.scores), np.sort(y.scores), atol=1e-4)


@pytest.mark.parametrize("name, options, device, words", [
    ("plugin.onnx", {}, "auto", "plugin node"),
    ("garbage.onnx", {}, "auto", "garbage.onnx"),
    ("raw.onnx", {}, "cuda", "runs on the CPU"),
    ("raw.onnx", {"precision": "fp8"}, "auto", "precision"),
    ("raw.onnx", {"threads": 0}, "auto", "threads"),
])
def test_refusals_are_one_line(small, name, options, device, words):
    with pytest.raises(YoloV3TrtError) as info:
        Detector(small / name, "openvino", device=device, backend_options=options)
    assert "\n" not in str(info.value) and words in str(info.value), str(info.value)


def test_contract(small):
    from yolov3_trt.runtime.backends.openvino_backend import OpenVinoBackend

    backend = OpenVinoBackend(small / "raw.onnx", threads=1)
    assert backend.metadata.input_size == (96, 96) and backend.metadata.names == tuple(COCO_NAMES)
    with pytest.raises(YoloV3TrtError, match=r"input must be \(B, 3, 96, 96\)"):
        backend.infer(np.zeros((1, 3, 64, 64), np.float32))
    outputs = backend.infer(np.zeros((2, 3, 96, 96), np.float32))
    assert [o.shape for o in outputs] == [(2, 255, 3, 3), (2, 255, 6, 6)]
    backend.close()
    with pytest.raises(YoloV3TrtError, match="closed"):
        backend.infer(np.zeros((1, 3, 96, 96), np.float32))


def test_the_int8_file_placed_for_tensorrt_loads_with_a_warning(small, tmp_path, caplog):
    import logging

    import onnx

    graph = onnx.load(str(small / "raw.onnx"))
    for key, value in (("precision", "int8"), ("quantize_target", "tensorrt")):
        entry = graph.metadata_props.add()
        entry.key, entry.value = f"yolov3_trt.{key}", value
    onnx.save(graph, str(tmp_path / "int8-trt.onnx"))
    with caplog.at_level(logging.WARNING, logger="yolov3_trt.runtime.backends.openvino_backend"):
        Detector(tmp_path / "int8-trt.onnx", "openvino").close()
        assert "less accurately than its Q/DQ define" in caplog.text and "--target cpu" in caplog.text
        caplog.clear()
        Detector(small / "raw.onnx", "openvino").close()
    assert "less accurately" not in caplog.text
