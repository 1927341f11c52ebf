"""CPU checks of what the GPU tests stand on (tests/gpu/gpu_helpers.py, gpu_kernel.py), so CI keeps
them right.

The GPU tests cannot run in CI; their premises can: the generated images are deterministic, the
order-free comparisons accept reordered ties and reject real differences, the NMS check accepts
ONNX Runtime's and the numpy reference's detections and rejects broken ones, the hand-built
score-tie model scores exactly conf where it should, and the PTX compiler choice falls back to nvcc
(or gives a reason) exactly when NVRTC is newer than the driver.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from gpu_helpers import (
    TIE_CONF,
    candidates_from_heads,
    detection_keys,
    detection_set_problem,
    model_decode,
    model_heads,
    nms_problem,
    random_heads,
    same_plugin_detections,
    scene_images,
    tie_input,
    tie_model,
)
from gpu_kernel import KernelUnavailable, compile_kernel
from helpers import random_model

from yolov3_trt.plugin.sources import PluginError


def test_scene_images_are_deterministic_and_varied():
    first, again = scene_images(6), scene_images(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert {a.shape for a in first} >= {(480, 640, 3), (500, 375, 3)} and all(a.dtype == np.uint8 for a in first)
    assert not np.array_equal(first[0], scene_images(1, seed=1)[0])


def _dets(boxes, scores, classes):
    return SimpleNamespace(boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
                           scores=np.asarray(scores, np.float32), class_ids=np.asarray(classes, np.int32))


def test_detection_sets_ignore_order_not_content():
    a = _dets([[0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 10, 10]], [0.9, 0.8, 0.8], [1, 1, 2])
    b = _dets([[0, 0, 10, 10], [20, 20, 40, 40.5], [0, 0, 10, 10]], [0.8, 0.8, 0.9], [2, 1, 1])
    assert detection_set_problem(a, b, max_box_diff=1.0) is None
    assert "corners differ" in detection_set_problem(a, b, max_box_diff=0.1)
    assert "2 detections vs 3" in detection_set_problem(a, _dets(b.boxes, b.scores, [1, 1, 1]))
    assert "detections vs" in detection_set_problem(a, _dets(b.boxes[:2], b.scores[:2], b.class_ids[:2]))
    assert "scores differ" in detection_set_problem(a, _dets(b.boxes, [0.7, 0.8, 0.9], b.class_ids))


def test_plugin_detections_compared_per_image_as_sets():
    k = 4
    boxes = np.zeros((1, k, 4), np.float32)
    boxes[0, :2] = [[0, 0, 10, 10], [50, 50, 60, 60]]
    scores = np.zeros((1, k), np.float32)
    scores[0, :2] = 0.5
    classes = np.full((1, k), -1, np.int32)
    classes[0, :2] = 3
    swapped = (np.array([[2]]), boxes[:, [1, 0, 2, 3]], scores[:, [1, 0, 2, 3]], classes[:, [1, 0, 2, 3]])
    same_plugin_detections(swapped, (np.array([[2]]), boxes, scores, classes))  # a tie, reordered: the same
    moved = boxes.copy()
    moved[0, 0, 0] = 1.0
    with pytest.raises(AssertionError):
        same_plugin_detections((np.array([[2]]), moved, scores, classes), (np.array([[2]]), boxes, scores, classes))


@pytest.fixture(scope="module")
def tiny_onnxruntime(tmp_path_factory):
    """(ONNX Runtime's raw heads, its end2end outputs, heads) of a random yolov3-tiny at 416 on four scenes."""
    pytest.importorskip("torch")
    import onnxruntime as ort

    from yolov3_trt.export.onnx_export import export_onnx
    from yolov3_trt.names import COCO_NAMES
    from yolov3_trt.preprocess import preprocess

    folder = tmp_path_factory.mktemp("tiny")
    model = random_model(folder, "yolov3-tiny")
    export_onnx(model, folder / "raw.onnx", COCO_NAMES, size=(416, 416))
    export_onnx(model, folder / "end2end.onnx", COCO_NAMES, flavour="end2end", size=(416, 416), conf=0.3,
                max_det=100)
    blob = preprocess(scene_images(4), (416, 416))[0]
    raw = ort.InferenceSession(str(folder / "raw.onnx"), providers=["CPUExecutionProvider"]).run(None, {"images": blob})
    end2end = ort.InferenceSession(str(folder / "end2end.onnx"),
                                   providers=["CPUExecutionProvider"]).run(None, {"images": blob})
    return raw, end2end, model.decode_spec((416, 416))


def test_nms_check_accepts_right_and_rejects_wrong_detections(tiny_onnxruntime):
    from gpu_helpers import end2end_rows

    from yolov3_trt.postprocess import DEFAULT_PRE_NMS_TOP_K, postprocess
    from yolov3_trt.specs import NmsSpec

    raw, end2end, decode = tiny_onnxruntime
    candidates = candidates_from_heads(raw, decode)
    reference = postprocess(raw, decode, NmsSpec(conf=0.3, iou=0.45, max_det=100, pre_nms_top_k=DEFAULT_PRE_NMS_TOP_K))
    settings = dict(conf=0.3, iou=0.45, max_det=100, top_k=3840)
    assert int(end2end[0].sum()) > 0
    for b, (boxes, scores, classes) in enumerate(reference):
        assert nms_problem(end2end_rows(end2end, b), candidates[b], **settings) is None
        assert nms_problem(_dets(boxes, scores, classes), candidates[b], **settings) is None
    boxes, scores, classes = reference[0]
    assert len(boxes) == 100  # full: the max_det cut is part of what is checked
    assert "is no candidate" in nms_problem(_dets(boxes + [5, 0, 5, 0], scores, classes), candidates[0], **settings)
    assert "is no candidate" in nms_problem(_dets(boxes, scores, (classes + 1) % 80), candidates[0], **settings)
    assert "overlap" in nms_problem(_dets(np.r_[boxes[:50], boxes[:1] + 1], np.r_[scores[:50], scores[:1]],
                                          np.r_[classes[:50], classes[:1]]), candidates[0], **settings)
    half = nms_problem(_dets(boxes[1:51], scores[1:51], classes[1:51]), candidates[0], **settings)
    assert "neither kept nor suppressed" in half  # the best detection dropped, and the cut is no excuse
    assert "more than max_det" in nms_problem(_dets(boxes, scores, classes), candidates[0],
                                              **{**settings, "max_det": 50})


def test_tie_model_scores_exactly_conf_on_onnxruntime(tmp_path):
    """The premise of the GPU score-threshold test: on ONNX Runtime the designed candidates score
    exactly TIE_CONF (visible at a lower conf) and are dropped at conf = TIE_CONF (its '>')."""
    import onnxruntime as ort

    blob, ties = tie_input(2)
    outputs = {}
    for conf in (0.2, TIE_CONF):
        path = tie_model(tmp_path / f"ties-{conf}.onnx", conf)
        outputs[conf] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": blob})
    for b in range(2):
        low, at = detection_keys(outputs[0.2], b), detection_keys(outputs[TIE_CONF], b)
        assert len(ties[b]) == 8 and ties[b] <= set(low) and {low[k] for k in ties[b]} == {np.float32(TIE_CONF)}
        assert not ties[b] & set(at) and set(at) == set(low) - ties[b] and len(at) == 24


def test_random_heads_fit_the_models():
    heads, grids = model_heads("yolov3-tiny", (416, 416))
    assert grids == [(13, 13), (26, 26)] and len(heads) == 2
    outputs = random_heads(np.random.default_rng(0), 2, heads, grids, fp16=True)
    assert [o.shape for o in outputs] == [(2, 255, 13, 13), (2, 255, 26, 26)] and outputs[0].dtype == np.float16
    assert model_heads("yolov3")[1] == [(13, 13), (26, 26), (52, 52)]
    decode = model_decode("yolov3-tiny", (416, 416))
    assert decode.grids == tuple(grids) and decode.anchors == tuple(h.anchors for h in heads)
    assert decode.head_shapes() == tuple(o.shape[1:] for o in outputs) and decode.num_classes == 80


# ---- which compiler writes the PTX ------------------------------------------------------------------

@pytest.fixture
def compilers(monkeypatch):
    """Stand-in compile_ptx and version probes: set ``state`` to describe the machine."""
    from yolov3_trt.plugin import ptx

    state = {"driver": 12060, "nvrtc": (13, 0), "nvcc": (12, 6), "fallback_inside": False, "calls": []}

    def version(v):
        return None if v is None else (v // 1000, (v % 1000) // 10)

    def compile_ptx(config, *, fp16=False, arch="compute_75", compiler="auto", use_cache=True, check_driver=True):
        state["calls"].append(compiler)
        chosen = "nvrtc" if compiler in ("auto", "nvrtc") and state["nvrtc"] else "nvcc"
        used = state[chosen]
        if used is None:
            raise PluginError("neither NVRTC nor nvcc is available")
        if state["driver"] is not None and used > version(state["driver"]):
            if compiler == "auto" and state["fallback_inside"] and state["nvcc"] and \
                    state["nvcc"] <= version(state["driver"]):
                return b"ptx from nvcc"
            raise PluginError(f"NVRTC/nvcc {used[0]}.{used[1]} writes PTX that the driver here cannot load")
        if state.get("broken"):
            raise PluginError("NVRTC could not compile yolo_decode_nms_kernel.cu")
        return f"ptx from {chosen}".encode()

    monkeypatch.setattr(ptx, "compile_ptx", compile_ptx)
    monkeypatch.setattr(ptx, "driver_version", lambda: state["driver"])
    monkeypatch.setattr(ptx, "nvrtc_version", lambda: state["nvrtc"])
    monkeypatch.setattr(ptx, "nvcc_version", lambda: state["nvcc"])
    return state


def test_nvrtc_newer_than_the_driver_falls_back_to_nvcc(compilers):
    assert compile_kernel(None, fp16=False, arch="compute_87") == (b"ptx from nvcc", "nvcc 12.6")
    assert compilers["calls"] == ["auto", "nvcc"]


def test_a_compile_ptx_that_falls_back_itself_is_fine(compilers):
    compilers["fallback_inside"] = True
    assert compile_kernel(None, fp16=False, arch="compute_87") == (b"ptx from nvcc", "nvcc 12.6")
    assert compilers["calls"] == ["auto"]


@pytest.mark.parametrize("nvcc", [None, (12, 8)])
def test_no_compiler_the_driver_accepts_is_a_reason_not_an_error(compilers, nvcc):
    compilers["nvcc"] = nvcc
    with pytest.raises(KernelUnavailable, match=r"driver \(CUDA 12.6\).*NVRTC 13.0, nvcc (none|12.8)"):
        compile_kernel(None, fp16=False, arch="compute_87")


def test_matching_nvrtc_is_used_and_its_compile_errors_are_real(compilers):
    compilers["driver"] = 13000
    assert compile_kernel(None, fp16=True, arch="compute_90") == (b"ptx from nvrtc", "nvrtc 13.0")
    compilers["broken"] = True
    with pytest.raises(PluginError, match="could not compile"):
        compile_kernel(None, fp16=True, arch="compute_90")
