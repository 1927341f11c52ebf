"""The -inf Pad -> MaxPool fold computes the same function and leaves no -inf in the graph."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from quantize_cases import tiny_onnx

from yolov3_trt.quantize.graph_prep import fold_inf_pads


def test_fold_keeps_outputs_bit_identical(tmp_path):
    path = tiny_onnx(tmp_path, size=96)
    model = onnx.load(str(path))
    pads_before = sum(n.op_type == "Pad" for n in model.graph.node)
    assert pads_before == 6  # yolov3-tiny: every [maxpool] pads with -inf
    assert fold_inf_pads(model) == pads_before
    assert not any(n.op_type == "Pad" for n in model.graph.node)
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert [list(next(a for a in p.attribute if a.name == "pads").ints) for p in pools][-1] == [0, 0, 1, 1]
    onnx.checker.check_model(model)
    x = np.random.default_rng(0).random((2, 3, 96, 96), dtype=np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert fold_inf_pads(model) == 0  # nothing left to fold


def test_no_fold_into_a_maxpool_with_auto_pad(tmp_path):
    model = onnx.load(str(tiny_onnx(tmp_path, size=96)))
    for pool in (n for n in model.graph.node if n.op_type == "MaxPool"):
        pool.attribute.append(onnx.helper.make_attribute("auto_pad", "SAME_UPPER"))
    assert fold_inf_pads(model) == 0  # explicit pads would replace the automatic ones: another function
    assert sum(n.op_type == "Pad" for n in model.graph.node) == 6
