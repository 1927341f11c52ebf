"""backend="auto" for an .onnx: the fastest CPU runtime measured for that kind of file, and the log says which."""
from __future__ import annotations

import logging

import onnx
import pytest
from helpers import random_model

from yolov3_trt.runtime import backends
from yolov3_trt.runtime.backends import CPU_FASTEST, choose
from yolov3_trt.runtime.detector import Detector

SIZE = (96, 64)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An FP32 export and copies whose metadata says FP16, INT8 cpu and INT8 tensorrt (choose reads only that)."""
    from yolov3_trt.export.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("auto")
    model = random_model(folder)
    export_onnx(model, folder / "fp32.onnx", [f"c{i}" for i in range(model.num_classes)], size=SIZE)
    out = {"fp32": folder / "fp32.onnx"}
    for name, precision, target in (("fp16", "fp16", "any"), ("int8-cpu", "int8", "cpu"),
                                    ("int8-tensorrt", "int8", "tensorrt")):
        graph = onnx.load(str(out["fp32"]))
        for key, value in (("precision", precision), ("quantize_target", target)):
            entry = graph.metadata_props.add()
            entry.key, entry.value = f"yolov3_trt.{key}", value
        onnx.save(graph, str(folder / f"{name}.onnx"))
        out[name] = folder / f"{name}.onnx"
    return out


def _expected(kind: tuple[str, str]) -> str:
    return CPU_FASTEST.get(kind, "onnxruntime")


@pytest.mark.parametrize("name, kind", [("fp32", ("fp32", "")), ("fp16", ("fp16", "any")),
                                        ("int8-cpu", ("int8", "cpu")), ("int8-tensorrt", ("int8", "tensorrt"))])
def test_auto_on_the_cpu_follows_the_measured_table(files, name, kind, monkeypatch, caplog):
    monkeypatch.setattr(backends, "installed", lambda backend: True)
    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: False)
    with caplog.at_level(logging.INFO, logger="yolov3_trt.runtime.backends"):
        chosen = choose(files[name], "auto", "cpu")
    assert chosen == _expected(kind)
    if chosen != "onnxruntime":  # a choice other than the base install's runtime is said, with the way out
        assert f"backend auto: {chosen} runs {name}.onnx" in caplog.text and "backend='onnxruntime'" in caplog.text


def test_auto_keeps_onnx_runtime_for_a_gpu_options_it_alone_takes_or_a_missing_runtime(files, monkeypatch):
    monkeypatch.setattr(backends, "installed", lambda backend: True)
    monkeypatch.setattr(backends, "CPU_FASTEST", {("int8", "tensorrt"): "openvino"})
    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: False)
    path = files["int8-tensorrt"]
    assert choose(path, "auto", "cpu") == "openvino"
    assert choose(path, "auto", "cuda") == "onnxruntime"               # only ONNX Runtime runs an .onnx on a GPU
    assert choose(path, "auto", "cpu", {"optimization": "basic"}) == "onnxruntime"  # an ONNX Runtime option
    assert choose(files["fp32"], "auto", "cpu", {"precision": "bf16"}) == "openvino"  # an OpenVINO option
    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: True)
    assert choose(path, "auto", "auto") == "onnxruntime"                # a GPU is there: ONNX Runtime's CUDA
    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: False)
    monkeypatch.setattr(backends, "installed", lambda backend: backend != "openvino")
    assert choose(path, "auto", "cpu") == "onnxruntime"                 # OpenVINO not installed


def test_the_detector_loads_what_auto_chose(files, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setattr(backends, "CPU_FASTEST", {("int8", "tensorrt"): "openvino"})
    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: False)
    with Detector(files["int8-tensorrt"]) as detector:
        assert detector.backend.startswith("openvino")
    with Detector(files["fp32"], backend_options={"precision": "bf16"}) as detector:
        assert detector.backend.startswith("openvino")
    with Detector(files["int8-cpu"]) as detector:
        assert detector.backend.startswith("onnxruntime")


def test_a_tailed_graph_stays_on_onnx_runtime(tmp_path, monkeypatch):
    from yolov3_trt.export.onnx_export import export_onnx

    monkeypatch.setattr(backends, "installed", lambda backend: True)
    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: False)
    model = random_model(tmp_path)
    export_onnx(model, tmp_path / "e2e.onnx", [f"c{i}" for i in range(model.num_classes)], flavour="end2end",
                size=SIZE)
    assert choose(tmp_path / "e2e.onnx", "auto", "cpu") == "onnxruntime"  # its NMS is the runtime's own


def test_the_table_names_only_files_whose_accuracy_was_measured_equal():
    # every raw kind measured (README "CPU runtimes"); the TensorRT INT8 file only with its uint8 rewrite
    assert set(CPU_FASTEST) == {("fp32", ""), ("fp16", "any"), ("int8", "cpu"), ("int8", "tensorrt")}
    assert set(CPU_FASTEST.values()) <= {"openvino", "onnxruntime"}


def test_without_onnx_auto_keeps_onnx_runtime_for_the_tensorrt_int8_file(files, monkeypatch):
    """OpenVINO runs that file accurately only with its activation Q/DQ read as uint8, which needs onnx."""
    import importlib.util

    monkeypatch.setattr(backends, "_ort_has_cuda", lambda: False)
    monkeypatch.setattr(backends, "installed", lambda backend: True)
    real = importlib.util.find_spec
    assert choose(files["int8-tensorrt"], "auto", "cpu") == "openvino"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert choose(files["int8-tensorrt"], "auto", "cpu") == "onnxruntime"
    assert choose(files["int8-cpu"], "auto", "cpu") == "openvino"  # no rewrite needed there
