"""TensorRT engines against ONNX Runtime, on a real GPU (see tests/gpu/README.md).

FP32/FP16: the engine's detections match ONNX Runtime's on the same ONNX (same classes, boxes
within a tolerance). INT8: AP50 within 1 point of the FP32 model on held-out generated images
(needs the trained checkpoint that benchmarks/train_synthetic.py writes, or
YOLOV3_TRT_CHECKPOINT/YOLOV3_TRT_DATA). Everything skips with the reason without TensorRT or a GPU.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import DARKNET, ROOT, random_model

from yolov3_trt import Detector
from yolov3_trt.build.device import availability, probe_cuda_device, supports_aot_plugin
from yolov3_trt.build.sidecar import read_sidecar
from yolov3_trt.build.steps import BuildOptions
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.preprocess import read_image

AVAILABLE, WHY = availability()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not AVAILABLE, reason=WHY)]

SIZE = (416, 416)
CONF = 0.3
PHOTOS = ("dog", "eagle", "giraffe", "horses", "person", "kite")
# (min IoU between matched boxes, max score difference) per precision
TOLERANCE = {"fp32": (0.98, 2e-3), "fp16": (0.90, 3e-2)}


@pytest.fixture(scope="module")
def photos():
    return [read_image(DARKNET / "images" / f"{name}.jpg") for name in PHOTOS]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """cfg name -> folder with raw.onnx and end2end.onnx of realistic random weights."""
    import torch  # noqa: F401 - export needs the [train] extra

    from yolov3_trt.export.onnx_export import export_onnx

    out = {}
    for name in ("yolov3-tiny", "yolov3"):
        folder = tmp_path_factory.mktemp(name)
        model = random_model(folder, name)
        export_onnx(model, folder / "raw.onnx", COCO_NAMES, size=SIZE)
        export_onnx(model, folder / "end2end.onnx", COCO_NAMES, flavour="end2end", size=SIZE, conf=CONF)
        out[name] = folder
    return out


@pytest.fixture(scope="module")
def timing_cache(tmp_path_factory):
    """One timing cache for every build of the run (each test has its own tmp_path)."""
    return tmp_path_factory.mktemp("timing") / "timing.cache"


def _build(onnx_path: Path, engine: Path, timing_cache: Path, batch=(1, 4, 8)) -> Path:
    from yolov3_trt.build.pipeline import build_engine

    build_engine(onnx_path, engine, BuildOptions(batch=batch, progress=False), timing_cache=timing_cache)
    return engine


def _precision_onnx(source: Path, precision: str) -> Path:
    if precision == "fp32":
        return source
    from yolov3_trt.quantize import quantize_fp16

    return quantize_fp16(source, source.with_name(f"{source.stem}-fp16.onnx"))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def _assert_match(expected, got, min_iou: float, max_score_diff: float, margin: float = 0.05):
    """Every reference detection clearly above the threshold has a same-class twin in ``got``."""
    for ref, out in zip(expected, got):
        keep = ref.scores > CONF + margin
        if not keep.any():
            continue
        assert len(out) > 0
        iou = _iou(ref.boxes[keep], out.boxes)
        same = ref.class_ids[keep][:, None] == out.class_ids[None, :]
        best = np.where(same, iou, 0).argmax(axis=1)
        assert (np.where(same, iou, 0).max(axis=1) >= min_iou).all()
        assert np.abs(ref.scores[keep] - out.scores[best]).max() <= max_score_diff


@pytest.mark.parametrize("cfg", ["yolov3-tiny", "yolov3"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("flavour", ["raw", "end2end"])
def test_engine_matches_onnxruntime(exported, photos, tmp_path, timing_cache, cfg, precision, flavour):
    onnx_path = _precision_onnx(exported[cfg] / f"{flavour}.onnx", precision)
    engine = _build(onnx_path, tmp_path / f"{cfg}-{flavour}-{precision}.engine", timing_cache)
    info = read_sidecar(engine)
    device, _ = probe_cuda_device()
    assert (info.gpu_name, info.compute_capability, info.precision) == (device.name, device.compute_capability,
                                                                          precision)
    with Detector(onnx_path, conf=CONF) as ort_detector, Detector(engine, conf=CONF) as trt_detector:
        assert trt_detector.backend.startswith("tensorrt")
        expected, got = ort_detector.detect_batch(photos), trt_detector.detect_batch(photos)
        _assert_match(expected, got, *TOLERANCE[precision])
        one = [trt_detector.detect(p) for p in photos]   # batch 1 through the same profile
        for a, b in zip(one, got):
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1.0)


def test_plugin_engine_equals_end2end_engine(exported, photos, tmp_path, timing_cache):
    import tensorrt as trt

    if not supports_aot_plugin(trt.__version__):
        pytest.skip(f"TensorRT {trt.__version__} has no ahead-of-time plugins (< 10.9): end2end is used instead")
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.model.yolov3 import YoloV3

    model = YoloV3.from_cfg("yolov3-tiny").eval()
    model.load_darknet_weights(exported["yolov3-tiny"] / "yolov3-tiny.weights")
    top_k = 1024  # the plugin's candidate capacity: the same cut on both sides
    export_onnx(model, tmp_path / "plugin.onnx", COCO_NAMES, flavour="plugin", size=SIZE, conf=CONF,
                pre_nms_top_k=top_k)
    export_onnx(model, tmp_path / "end2end.onnx", COCO_NAMES, flavour="end2end", size=SIZE, conf=CONF,
                pre_nms_top_k=top_k)
    plugin = _build(tmp_path / "plugin.onnx", tmp_path / "plugin.engine", timing_cache)
    end2end = _build(tmp_path / "end2end.onnx", tmp_path / "end2end.engine", timing_cache)
    assert read_sidecar(plugin).plugin and not read_sidecar(end2end).plugin
    with Detector(plugin) as a, Detector(end2end) as b:
        _assert_match(b.detect_batch(photos), a.detect_batch(photos), 0.99, 1e-3)


def test_cuda_graph_and_caller_stream(exported, photos, tmp_path, timing_cache):
    from cuda.bindings import runtime as rt

    from yolov3_trt.preprocess import preprocess
    from yolov3_trt.runtime.backends.trt_backend import TensorRTBackend

    engine = _build(exported["yolov3-tiny"] / "raw.onnx", tmp_path / "tiny.engine", timing_cache)
    blob = preprocess(photos[:4], SIZE)[0]
    err, stream = rt.cudaStreamCreate()
    assert err == rt.cudaError_t.cudaSuccess
    plain = TensorRTBackend(engine)
    graphed = TensorRTBackend(engine, cuda_graph=True, stream=int(stream))
    try:
        reference = plain.infer(blob)
        for _ in range(3):  # plain run, capture, replay
            for a, b in zip(graphed.infer(blob), reference):
                np.testing.assert_array_equal(a, b)
        assert 4 in graphed._graphs
        for a, b in zip(graphed.infer(blob[:2]), plain.infer(blob[:2])):  # another batch size: the old graph is dropped
            np.testing.assert_array_equal(a, b)
        assert 4 not in graphed._graphs
    finally:
        plain.close()
        graphed.close()
        rt.cudaStreamDestroy(stream)
    with pytest.raises(Exception, match="closed"):
        graphed.infer(blob)


def test_int8_ap50_within_one_point(tmp_path, timing_cache):
    checkpoint = Path(os.environ.get("YOLOV3_TRT_CHECKPOINT",
                                     ROOT / "docs/benchmarks/train_synthetic/run/best.pt"))
    data = Path(os.environ.get("YOLOV3_TRT_DATA", ROOT / "docs/benchmarks/train_synthetic/data"))
    if not checkpoint.is_file() or not (data / "val.txt").is_file():
        pytest.skip(f"needs a trained checkpoint ({checkpoint}) and its data ({data}/val.txt): run "
                    "python benchmarks/train_synthetic.py --output docs/benchmarks/train_synthetic")
    from yolov3_trt.data.dataset import load_dataset
    from yolov3_trt.evaluate.runner import evaluate_detector
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.model.checkpoint import load_checkpoint
    from yolov3_trt.quantize import quantize_int8

    model, names, _ = load_checkpoint(checkpoint)
    fp32 = tmp_path / "model.onnx"
    export_onnx(model.eval(), fp32, names, flavour="end2end", conf=0.005, max_det=100)
    int8 = quantize_int8(fp32, tmp_path / "model-int8.onnx", data / "train.txt", target="tensorrt", num_images=128)
    engine = _build(int8, tmp_path / "model-int8.engine", timing_cache)
    dataset = load_dataset(data / "val.txt")
    with Detector(fp32) as reference, Detector(engine) as quantized:
        ap_fp32 = evaluate_detector(reference, dataset, progress=False)["ap50"]
        ap_int8 = evaluate_detector(quantized, dataset, progress=False)["ap50"]
    assert abs(ap_int8 - ap_fp32) <= 0.01, (ap_fp32, ap_int8)
