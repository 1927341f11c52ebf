"""TensorRT engines against ONNX Runtime, on a real GPU (see tests/gpu/README.md).

FP32/FP16: the engine's detections match ONNX Runtime's on the same ONNX (same classes, boxes
within a tolerance). INT8: AP50 within 1 point of the FP32 model on held-out generated images
(needs the trained checkpoint that benchmarks/train_synthetic.py writes, or
YOLOV3_TRT_CHECKPOINT/YOLOV3_TRT_DATA). Everything skips with the reason without TensorRT or a GPU.
The images are the project's own procedural shapes (``gpu_helpers.scene_images``), so nothing
here needs ``../shared`` or the network.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
from gpu_helpers import (
    detection_set_problem,
    model_decode,
    nms_problem,
    onnxruntime_candidates,
    output_rows,
    scene_images,
)
from helpers import ROOT, random_model

from yolov3_trt import Detector
from yolov3_trt.build.steps import BuildOptions
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.tensorrt.device import availability, probe_cuda_device, supports_aot_plugin
from yolov3_trt.tensorrt.sidecar import read_sidecar

AVAILABLE, WHY = availability()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not AVAILABLE, reason=WHY)]

logger = logging.getLogger(__name__)

SIZE = (416, 416)
CONF, IOU, MAX_DET, TOP_K = 0.3, 0.45, 100, 3840  # export_onnx's defaults but conf
# (min IoU between an engine's box and its candidate, max score difference) per precision; FP32
# engines may use TF32 convolutions
TOLERANCE = {"fp32": (0.97, 5e-3), "fp16": (0.90, 3e-2)}


@pytest.fixture(scope="module")
def photos():
    """Six generated scenes of different sizes and aspect ratios (BGR uint8)."""
    return scene_images(6)


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
    target = source.with_name(f"{source.stem}-fp16.onnx")
    if target.is_file():  # converted by an earlier test of this module
        return target
    from yolov3_trt.quantize import quantize_fp16

    return quantize_fp16(source, target)


def _onnxruntime_candidates(raw_onnx: Path, blob: np.ndarray, cfg: str):
    """Every (box, class) pair ONNX Runtime's raw heads give, per image (network pixels)."""
    return onnxruntime_candidates(raw_onnx, blob, model_decode(cfg, SIZE))


def _engine_rows(backend, blob: np.ndarray, flavour: str, cfg: str) -> list:
    """Per image, the engine's detections in network pixels (a raw engine's through the numpy
    reference post-processing)."""
    return output_rows(backend.infer(blob), flavour, model_decode(cfg, SIZE), conf=CONF, iou=IOU,
                       max_det=MAX_DET, top_k=TOP_K)


def _assert_valid_nms(rows, candidates, precision: str, what: str, top_k: int = TOP_K) -> None:
    min_iou, score_tol = TOLERANCE[precision]
    for i, (kept, image_candidates) in enumerate(zip(rows, candidates)):
        problem = nms_problem(kept, image_candidates, conf=CONF, iou=IOU, max_det=MAX_DET, top_k=top_k,
                              score_tol=score_tol, min_iou=min_iou)
        assert problem is None, f"image {i}, {what}: {problem}"


@pytest.mark.parametrize("cfg", ["yolov3-tiny", "yolov3"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("flavour", ["raw", "end2end"])
def test_engine_matches_onnxruntime(exported, photos, tmp_path, timing_cache, cfg, precision, flavour):
    """The engine's detections are a greedy NMS of ONNX Runtime's candidates (same ONNX
    weights and precision) within the precision's tolerance; batch 1 gives what batch 6 gives."""
    from yolov3_trt.preprocess import preprocess
    from yolov3_trt.runtime.backends.trt_backend import TensorRTBackend

    onnx_path = _precision_onnx(exported[cfg] / f"{flavour}.onnx", precision)
    raw_onnx = _precision_onnx(exported[cfg] / "raw.onnx", precision)
    engine = _build(onnx_path, tmp_path / f"{cfg}-{flavour}-{precision}.engine", timing_cache)
    info = read_sidecar(engine)
    device, _ = probe_cuda_device()
    assert (info.gpu_name, info.compute_capability, info.precision) == (device.name, device.compute_capability,
                                                                          precision)
    blob = preprocess(photos, SIZE)[0]
    candidates = _onnxruntime_candidates(raw_onnx, blob, cfg)
    backend = TensorRTBackend(engine)
    try:
        rows = _engine_rows(backend, blob, flavour, cfg)
        assert sum(len(r.scores) for r in rows) > 0, "no detections: the comparison would be empty"
        _assert_valid_nms(rows, candidates, precision, f"TensorRT {precision} {flavour} batch {len(blob)}")
        one = [_engine_rows(backend, blob[i:i + 1], flavour, cfg)[0] for i in range(len(blob))]
    finally:
        backend.close()
    for i, (a, b) in enumerate(zip(one, rows)):  # batch 1 through the same profile: the same set
        problem = detection_set_problem(a, b, max_box_diff=1.0, max_score_diff=TOLERANCE[precision][1])
        if problem is not None:  # NMS may break exact score ties differently; both must still be right
            _assert_valid_nms([a], [candidates[i]], precision, f"batch 1 (differs from batch 6: {problem})")
    with Detector(engine, conf=CONF) as trt_detector:  # the user's path: letterbox in, image pixels out
        assert trt_detector.backend.startswith("tensorrt")
        found = trt_detector.detect_batch(photos)
        assert [len(d) for d in found] == [int((r.scores > np.float32(CONF)).sum()) for r in rows]
        for d, photo in zip(found, photos):
            height, width = photo.shape[:2]
            assert (d.boxes >= -1).all() and (d.boxes[:, [0, 2]] <= width + 1).all() and \
                (d.boxes[:, [1, 3]] <= height + 1).all()


def test_plugin_engine_equals_end2end_engine(exported, photos, tmp_path, timing_cache):
    """TensorRT >= 10.9: the decode+NMS plugin engine and the end2end engine (TensorRT's NMS layer)
    are both a right NMS of ONNX Runtime's candidates, with the plugin's capacity as the top-K cut."""
    import tensorrt as trt

    if not supports_aot_plugin(trt.__version__):
        pytest.skip(f"TensorRT {trt.__version__} has no ahead-of-time plugins (< 10.9): end2end is used instead")
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.preprocess import preprocess
    from yolov3_trt.runtime.backends.trt_backend import TensorRTBackend

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
    blob = preprocess(photos, SIZE)[0]
    candidates = _onnxruntime_candidates(exported["yolov3-tiny"] / "raw.onnx", blob, "yolov3-tiny")
    results = {}
    for name, engine in (("plugin", plugin), ("end2end", end2end)):
        backend = TensorRTBackend(engine)
        try:
            results[name] = _engine_rows(backend, blob, "end2end", "yolov3-tiny")
        finally:
            backend.close()
        _assert_valid_nms(results[name], candidates, "fp32", f"{name} engine", top_k=top_k)
    same = sum(detection_set_problem(a, b, max_box_diff=0.5, max_score_diff=2e-3) is None
               for a, b in zip(results["plugin"], results["end2end"]))
    logger.warning("plugin and end2end engines: %d of %d images with the same detection set (the rest differ "
                   "only in how exact ties were broken)", same, len(blob))


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
