"""TensorRT INT8 (ModelOpt Q/DQ) and FP16 (AutoCast) ONNX: what TensorRT requires, checked on the graph.

TensorRT's explicit quantization takes only zero-point-0 (symmetric) Q/DQ and no quantized
bias; these tests check every Conv of the file, that it passes onnx.checker at opset >= 13, and
that it runs on ONNX Runtime's CPU provider close to the FP32 model. Building an engine from it
needs TensorRT and a GPU (the build tool's tests).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from quantize_cases import NAMES, rel_error, tiny_onnx, write_images

pytest.importorskip("modelopt.onnx.quantization",
                    reason="nvidia-modelopt is not installed (pip install -e .[quantize])")

from yolov3_trt.calibration import load_calibration_images  # noqa: E402
from yolov3_trt.metadata import ModelMetadata  # noqa: E402
from yolov3_trt.quantize import quantize_fp16, quantize_int8  # noqa: E402
from yolov3_trt.runtime.detector import Detector  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("trt")
    fp32 = tiny_onnx(root, size=128)
    images = write_images(root / "calib", 4)
    trt = quantize_int8(fp32, root / "int8-trt.onnx", root / "calib", target="tensorrt", num_images=4,
                        progress=False)
    fp16 = quantize_fp16(fp32, root / "fp16.onnx")
    return {"fp32": fp32, "trt": trt, "fp16": fp16, "images": images, "root": root}


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})


def _constant(model, name):
    """The value of an initializer or Constant output ``name`` (None if computed)."""
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _check_qdq(model, node):
    """A DQ with an int8 zero point of 0 (an absent one would mean uint8, which TensorRT rejects)."""
    assert node.op_type == "DequantizeLinear", node.op_type
    zero = _constant(model, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    assert zero is not None and not zero.any() and zero.dtype == np.int8


def test_every_conv_input_and_weight_has_zero_point_0_qdq_and_no_quantized_bias(files):
    model = onnx.load(str(files["trt"]))
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 13  # yolov3-tiny
    for conv in convs:
        for index in (0, 1):
            dq = producer[conv.input[index]]
            _check_qdq(model, dq)
            source = producer.get(dq.input[0])
            if source is not None:  # activations, and weights stored in float: Q then DQ
                assert source.op_type == "QuantizeLinear"
                zero = _constant(model, source.input[2]) if len(source.input) > 2 and source.input[2] else None
                assert zero is not None and not zero.any() and zero.dtype == np.int8
            else:
                assert _constant(model, dq.input[0]).dtype == np.int8
        if len(conv.input) > 2 and conv.input[2]:
            bias = producer.get(conv.input[2])
            assert bias is None or bias.op_type not in ("DequantizeLinear", "QuantizeLinear")
    weight_scales = [_constant(model, producer[c.input[1]].input[1]) for c in convs]
    assert all(s is not None and s.size > 1 for s in weight_scales)  # per-channel weights
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            zero = _constant(model, node.input[2])
            assert zero is not None and not zero.any()


def test_opset_checker_and_runs_on_onnx_runtime(files):
    model = onnx.load(str(files["trt"]))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    onnx.checker.check_model(model, full_check=True)
    x = load_calibration_images(files["images"][:2], (128, 128), progress=False)
    assert rel_error(_run(files["trt"], x), _run(files["fp32"], x)) < 0.15
    meta = ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, files["trt"])
    assert meta.extra["precision"] == "int8" and meta.extra["quantize_target"] == "tensorrt"
    with Detector(files["trt"], "onnxruntime") as detector:
        assert list(detector.names) == NAMES


def test_fp16_keeps_fp32_io_runs_and_matches(files):
    model = onnx.load(str(files["fp16"]))
    float32 = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [float32]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [float32] * 2
    fp16_weights = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(fp16_weights) >= 13  # the Conv weights are FP16
    onnx.checker.check_model(model, full_check=True)
    x = load_calibration_images(files["images"][:2], (128, 128), progress=False)
    got = _run(files["fp16"], x)
    assert all(g.dtype == np.float32 for g in got)
    assert rel_error(got, _run(files["fp32"], x)) < 5e-3
    with Detector(files["fp16"], "onnxruntime") as detector:
        assert detector.metadata.extra["precision"] == "fp16"


def test_tensorrt_int8_cache_and_calibration_method_max(files, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = quantize_int8(files["fp32"], tmp_path / "a.onnx", files["root"] / "calib", target="tensorrt",
                          method="max", num_images=4, cache_dir=cache, progress=False)
    import yolov3_trt.quantize.int8_tensorrt as int8_tensorrt

    monkeypatch.setattr(int8_tensorrt, "quantize_tensorrt", lambda *a, **k: pytest.fail("calibrated on a hit"))
    second = quantize_int8(files["fp32"], tmp_path / "b.onnx", files["root"] / "calib", target="tensorrt",
                           method="max", num_images=4, cache_dir=cache, progress=False)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != files["trt"].read_bytes()  # max differs from entropy


def test_cpu_int8_still_works_after_modelopt_ran_in_this_process(files, tmp_path):
    # ModelOpt patches onnxruntime.quantization for good; it runs in a child process so this works.
    out = quantize_int8(files["fp32"], tmp_path / "cpu.onnx", files["root"] / "calib", target="cpu",
                        method="entropy", num_images=4, progress=False)
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(out)).graph.node)
