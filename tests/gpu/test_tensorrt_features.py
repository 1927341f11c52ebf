"""TensorRT behaviour the project relies on or must find out, on a real GPU (see tests/gpu/README.md).

- CUDA-graph capture of an end2end engine (TensorRT's NMS layer has a data-dependent output
  shape): either the graph replays bit for bit like plain execution, or the backend warned once
  and fell back to plain ``execute_async_v3``; the outputs are right either way.
- Whether TensorRT's NMS score threshold is ``>=`` where ONNX Runtime's is ``>``: a hand-built
  end2end model whose heads are exactly what the input says, with candidates scoring exactly
  ``conf``; the engine must equal ONNX Runtime except possibly for those, and says which it did.
- The DLA with a strongly typed FP16 network (Jetson only), a version-compatible engine with the
  AOT plugin (TensorRT >= 10.9), two GPUs from one thread (machines with two GPUs).

Everything skips with the reason without TensorRT or a GPU; nothing needs ``../shared`` or the
network (images: the project's procedural shapes).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from gpu_helpers import (
    TIE_CONF,
    detection_keys,
    detection_set_problem,
    end2end_rows,
    model_decode,
    nms_problem,
    onnxruntime_candidates,
    output_rows,
    scene_images,
    tie_input,
    tie_model,
)
from helpers import random_model

from yolov3_trt import Detector
from yolov3_trt.build.steps import BuildOptions
from yolov3_trt.names import COCO_NAMES
from yolov3_trt.tensorrt.device import availability, probe_cuda_device, supports_aot_plugin
from yolov3_trt.tensorrt.sidecar import read_sidecar

AVAILABLE, WHY = availability()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not AVAILABLE, reason=WHY)]
logger = logging.getLogger(__name__)

SIZE = (416, 416)
CONF = 0.3


@pytest.fixture(scope="module")
def timing_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("timing") / "timing.cache"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Folder with yolov3-tiny.weights (realistic random heads), raw.onnx and end2end.onnx at 416."""
    import torch  # noqa: F401 - export needs the [train] extra

    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("tiny")
    model = random_model(folder, "yolov3-tiny")
    export_onnx(model, folder / "raw.onnx", COCO_NAMES, size=SIZE)
    export_onnx(model, folder / "end2end.onnx", COCO_NAMES, flavour="end2end", size=SIZE, conf=CONF)
    return folder


def _build(onnx_path: Path, engine: Path, timing_cache: Path, **options) -> Path:
    from yolov3_trt.build.pipeline import build_engine

    options.setdefault("batch", (1, 4, 8))
    build_engine(onnx_path, engine, BuildOptions(progress=False, **options), timing_cache=timing_cache)
    return engine


def _assert_same_end2end(got, expected, **tolerance):
    np.testing.assert_array_equal(got[0], expected[0])
    for b in range(len(expected[0])):
        problem = detection_set_problem(end2end_rows(got, b), end2end_rows(expected, b), **tolerance)
        assert problem is None, f"image {b}: {problem}"


# ---- CUDA graphs on an end2end engine ------------------------------------------------------------

def test_end2end_cuda_graph_replays_or_falls_back(tiny, tmp_path, timing_cache, caplog, record_property):
    """Capture may fail on the NMS layer's data-dependent shape: then one warning and plain runs."""
    from cuda.bindings import runtime as rt

    from yolov3_trt.errors import YoloV3TrtError
    from yolov3_trt.preprocess import preprocess
    from yolov3_trt.runtime.backends import trt_backend
    from yolov3_trt.runtime.backends.trt_backend import TensorRTBackend

    engine = _build(tiny / "end2end.onnx", tmp_path / "tiny-end2end.engine", timing_cache)
    blob = preprocess(scene_images(4), SIZE)[0]
    with pytest.raises(YoloV3TrtError, match="legacy default stream"):
        TensorRTBackend(engine, cuda_graph=True, stream=0)
    plain, graphed = TensorRTBackend(engine), TensorRTBackend(engine, cuda_graph=True)
    try:
        err, flags = rt.cudaStreamGetFlags(graphed._stream)
        assert err == rt.cudaError_t.cudaSuccess and flags & rt.cudaStreamNonBlocking
        reference = plain.infer(blob)
        assert int(reference[0].sum()) > 0, "the random model detects nothing: the comparison would be empty"
        with caplog.at_level(logging.WARNING, logger=trt_backend.__name__):
            for _ in range(4):  # plain run, capture (or its failure), then replay (or plain runs)
                _assert_same_end2end(graphed.infer(blob), reference, max_box_diff=0.0, max_score_diff=0.0)
        warnings = [r.getMessage() for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
        if graphed._graphs:
            outcome = "captured and replayed"
            assert graphed.cuda_graph and list(graphed._graphs) == [4] and not warnings
        else:
            outcome = f"fell back to plain execution: {warnings[0] if warnings else '(no warning)'}"
            assert graphed.cuda_graph is False and len(warnings) == 1, warnings
        record_property("end2end_cuda_graph", outcome)
        logger.warning("end2end engine under CUDA-graph capture: %s", outcome)
        # another batch size: a new capture (or, after a fallback, still plain), the same answer
        _assert_same_end2end(graphed.infer(blob[:2]), plain.infer(blob[:2]), max_box_diff=0.0, max_score_diff=0.0)
    finally:
        plain.close()
        graphed.close()


# ---- NMS score threshold: >= or > ------------------------------------------------------------------

class _closing:
    """A TensorRTBackend on ``engine``, closed on leaving the block."""

    def __init__(self, engine, **kwargs):
        from yolov3_trt.runtime.backends.trt_backend import TensorRTBackend

        self.backend = TensorRTBackend(engine, **kwargs)

    def __enter__(self):
        return self.backend

    def __exit__(self, *exc):
        self.backend.close()


def test_nms_score_threshold_at_exactly_conf(tmp_path, timing_cache, record_property):
    """ONNX Runtime keeps score > conf. Does TensorRT's NMS layer keep score == conf too? The
    engine must give ONNX Runtime's detections, plus possibly exactly the candidates scoring conf
    (all of them or none); which one it is goes to the log and the test's properties."""
    import onnxruntime as ort
    import tensorrt as trt

    blob, ties = tie_input(2)
    # At a lower conf both runtimes must show every tie candidate scoring exactly TIE_CONF, or the
    # comparison at TIE_CONF would not test the threshold's tie rule at all.
    low = tie_model(tmp_path / "ties-low.onnx", 0.2)
    low_engine = _build(low, tmp_path / "ties-low.engine", timing_cache, batch=(1, 2, 2))
    ort_low = ort.InferenceSession(str(low), providers=["CPUExecutionProvider"]).run(None, {"images": blob})
    with _closing(low_engine) as backend:
        trt_low = backend.infer(blob)
    for name, outputs in (("ONNX Runtime", ort_low), (f"TensorRT {trt.__version__}", trt_low)):
        for b in range(len(blob)):
            tie_scores = {k: v for k, v in detection_keys(outputs, b).items() if k in ties[b]}
            if len(tie_scores) != len(ties[b]) or any(v != np.float32(TIE_CONF) for v in tie_scores.values()):
                pytest.skip(f"inconclusive: {name} scores sigmoid(0)*sigmoid(0) as "
                            f"{sorted(set(tie_scores.values()))} ({len(tie_scores)} of {len(ties[b])} candidates), "
                            f"not exactly {TIE_CONF}")
    model = tie_model(tmp_path / "ties.onnx", TIE_CONF)
    engine = _build(model, tmp_path / "ties.engine", timing_cache, batch=(1, 2, 2))
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"images": blob})
    with _closing(engine) as backend:
        got = backend.infer(blob)
    kept = 0
    for b in range(len(blob)):
        ort_rows, trt_rows = detection_keys(expected, b), detection_keys(got, b)
        assert not ties[b] & set(ort_rows), "ONNX Runtime kept a candidate scoring exactly conf: its rule is not '>'"
        missing, extra = set(ort_rows) - set(trt_rows), set(trt_rows) - set(ort_rows)
        assert not missing, f"image {b}: TensorRT lacks ONNX Runtime's detections {sorted(missing)}"
        assert extra <= ties[b], f"image {b}: TensorRT detections that are no tie: {sorted(extra - ties[b])}"
        for key, score in ort_rows.items():
            assert abs(trt_rows[key] - score) <= 1e-5, (key, score, trt_rows[key])
        kept += len(extra)
    total = sum(len(t) for t in ties)
    rule = (">= (keeps a score equal to conf)" if kept == total else "> (drops a score equal to conf)" if not kept
            else f"mixed ({kept} of {total} candidates scoring exactly conf kept)")
    observed = f"TensorRT {trt.__version__} NMS score threshold: {rule}; ONNX Runtime: >"
    record_property("nms_score_threshold", observed)
    logger.warning("%s", observed)
    assert kept in (0, total), observed  # some but not all would make the result depend on order


# ---- DLA, version compatibility, two GPUs ------------------------------------------------------------

def _dla_cores() -> int:
    import tensorrt as trt

    return int(trt.Builder(trt.Logger(trt.Logger.WARNING)).num_DLA_cores)


def _assert_valid_nms(engine: Path, raw_onnx: Path, blob: np.ndarray, flavour: str, what: str, *, top_k: int,
                      min_iou: float, score_tol: float) -> None:
    """The engine's detections are a greedy NMS of ONNX Runtime's candidates from ``raw_onnx``."""
    decode = model_decode("yolov3-tiny", SIZE)
    candidates = onnxruntime_candidates(raw_onnx, blob, decode)
    with _closing(engine) as backend:
        rows = output_rows(backend.infer(blob), flavour, decode, conf=CONF, iou=0.45, max_det=100, top_k=top_k)
    assert sum(len(r.scores) for r in rows) > 0, "no detections: the comparison would be empty"
    for i, (kept, image_candidates) in enumerate(zip(rows, candidates)):
        problem = nms_problem(kept, image_candidates, conf=CONF, iou=0.45, max_det=100, top_k=top_k,
                              score_tol=score_tol, min_iou=min_iou)
        assert problem is None, f"image {i}, {what}: {problem}"


def test_dla_strongly_typed_fp16(tmp_path, timing_cache):
    """Jetson (Orin's DLA): a strongly typed FP16 network builds for DLA core 0 with GPU fallback
    and detects like ONNX Runtime on the same FP16 ONNX."""
    if _dla_cores() == 0:
        pytest.skip("no DLA on this device (builder.num_DLA_cores == 0): Jetson AGX/NX Orin have them")
    import torch  # noqa: F401

    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.preprocess import preprocess
    try:
        from yolov3_trt.quantize import quantize_fp16
    except ImportError as err:
        pytest.skip(f"FP16 conversion needs the [quantize] extra ({err})")

    model = random_model(tmp_path, "yolov3-tiny")
    export_onnx(model, tmp_path / "raw.onnx", COCO_NAMES, size=SIZE, batch=1)  # the DLA wants static shapes
    fp16 = quantize_fp16(tmp_path / "raw.onnx", tmp_path / "raw-fp16.onnx")
    engine = _build(fp16, tmp_path / "dla.engine", timing_cache, batch=(1, 1, 1), dla_core=0)
    info = read_sidecar(engine)
    assert info.dla_core == 0 and info.precision == "fp16"
    for i, image in enumerate(scene_images(3)):
        blob = preprocess([image], SIZE)[0]
        _assert_valid_nms(engine, fp16, blob, "raw", f"image {i} on the DLA", top_k=3840, min_iou=0.85,
                          score_tol=5e-2)
    with Detector(engine, conf=CONF) as dla:  # and through the Detector
        assert len(dla.detect_batch(scene_images(2))) == 2


def test_version_compatible_engine_with_aot_plugin(tiny, tmp_path, timing_cache):
    """TensorRT >= 10.9: the plugin graph builds version-compatible (lean runtime and the plugin's
    PTX inside the plan), loads with host code allowed, and detects right (a greedy NMS of ONNX
    Runtime's candidates)."""
    import tensorrt as trt

    if not supports_aot_plugin(trt.__version__):
        pytest.skip(f"TensorRT {trt.__version__} has no ahead-of-time plugins (< 10.9)")
    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.model.yolov3 import YoloV3
    from yolov3_trt.preprocess import preprocess

    model = YoloV3.from_cfg("yolov3-tiny").eval()
    model.load_darknet_weights(tiny / "yolov3-tiny.weights")
    top_k = 1024  # the plugin's candidate capacity
    export_onnx(model, tmp_path / "plugin.onnx", COCO_NAMES, flavour="plugin", size=SIZE, conf=CONF,
                pre_nms_top_k=top_k)
    engine = _build(tmp_path / "plugin.onnx", tmp_path / "plugin-vc.engine", timing_cache, version_compatible=True)
    info = read_sidecar(engine)
    assert info.version_compatible and info.plugin, info
    blob = preprocess(scene_images(6), SIZE)[0]
    _assert_valid_nms(engine, tiny / "raw.onnx", blob, "plugin", "version-compatible plugin engine", top_k=top_k,
                      min_iou=0.97, score_tol=5e-3)
    with Detector(engine) as vc:
        assert vc.backend.startswith("tensorrt") and len(vc.detect_batch(scene_images(2))) == 2


def test_two_gpus_in_one_thread(tiny, tmp_path, timing_cache):
    """Backends on cuda:0 and cuda:1 used alternately from one thread give each GPU's own answer."""
    second, why = probe_cuda_device(1)
    if second is None:
        pytest.skip(f"needs two GPUs: {why}")
    from yolov3_trt.build.pipeline import build_engine
    from yolov3_trt.preprocess import preprocess
    from yolov3_trt.runtime.backends.trt_backend import TensorRTBackend

    engine0 = _build(tiny / "raw.onnx", tmp_path / "gpu0.engine", timing_cache)
    engine1 = tmp_path / "gpu1.engine"
    build_engine(tiny / "raw.onnx", engine1, BuildOptions(batch=(1, 4, 8), progress=False), device=second,
                 timing_cache=tmp_path / "timing-gpu1.cache")
    blob = preprocess(scene_images(2), SIZE)[0]
    a, b = TensorRTBackend(engine0, device="cuda:0"), TensorRTBackend(engine1, device="cuda:1", cuda_graph=True)
    try:
        first = [a.infer(blob), b.infer(blob)]
        for _ in range(3):
            for backend, reference in zip((a, b), first):
                for x, y in zip(backend.infer(blob), reference):
                    np.testing.assert_array_equal(x, y)
        if read_sidecar(engine0).gpu_name == read_sidecar(engine1).gpu_name:
            for x, y in zip(*first):  # the same network on two GPUs of one model: near-equal heads
                np.testing.assert_allclose(x, y, rtol=1e-2, atol=1e-2)
    finally:
        a.close()
        b.close()


# ---- an INT8 engine built within an AP50 budget ---------------------------------------------------

def test_budgeted_int8_engine_carries_its_budget(tiny, tmp_path, timing_cache):
    """quantize_int8_budget on the end2end graph (measured on its raw heads, agreement with FP32 on
    unlabelled scenes), then the engine: its sidecar carries the ONNX's ap_budget, and it runs."""
    import importlib.util

    import cv2

    if importlib.util.find_spec("modelopt") is None:
        pytest.skip("INT8 for TensorRT needs nvidia-modelopt (the [quantize] extra)")
    from yolov3_trt.quantize import quantize_int8_budget

    images = tmp_path / "scenes"
    images.mkdir()
    scenes = scene_images(8)
    for i, image in enumerate(scenes):
        cv2.imwrite(str(images / f"{i:03d}.png"), image)
    onnx_path = tmp_path / "end2end-int8.onnx"
    report = quantize_int8_budget(tiny / "end2end.onnx", onnx_path, images, images, max_ap_drop=100.0, num_images=8)
    engine = _build(onnx_path, tmp_path / "budget.engine", timing_cache, batch=(1, 1, 1))
    budget = read_sidecar(engine).model_metadata(engine).ap_budget
    assert budget is not None and budget["k"] == report["chosen"]["k"] and budget["budget"] == 100.0
    assert report["speed"]["tensorrt"]["k0_ms"] > 0 and report["speed"]["tensorrt"]["gpu"].startswith("TensorRT")
    with Detector(engine) as detector:
        detector.detect(scenes[0])
