"""export/end2end.py: the standard-ops decode + NMS tail, run on ONNX Runtime.

Contracts: the EfficientNMS outputs (names, dtypes, shapes), padded slots, and the detections of
the plugin's golden case (tests/plugin/golden) within float32 rounding of the reference.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto
from test_plugin_node import DECODE, NMS, raw_model

from yolov3_trt.export.end2end import OUTPUT_NAMES, append_end2end
from yolov3_trt.specs import NmsSpec

ort = pytest.importorskip("onnxruntime")
GOLDEN = Path(__file__).resolve().parents[1] / "plugin" / "golden" / "decode_nms_golden.npz"


def _run(model: onnx.ModelProto, heads):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(list(OUTPUT_NAMES), {f"in{i}": h for i, h in enumerate(heads)})


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as data:
        return {key: data[key] for key in data.files}


def test_outputs_follow_efficientnms():
    model = append_end2end(raw_model(), DECODE, NMS)
    outputs = {o.name: ([d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim],
                        o.type.tensor_type.elem_type)
               for o in model.graph.output}
    assert outputs == {"num_dets": (["batch", 1], TensorProto.INT32), "boxes": (["batch", 16, 4], TensorProto.FLOAT),
                       "scores": (["batch", 16], TensorProto.FLOAT), "classes": (["batch", 16], TensorProto.INT32)}
    onnx.checker.check_model(model)


def test_golden_case_on_onnxruntime(golden):
    heads = [golden["head0"], golden["head1"]]
    num_dets, boxes, scores, classes = _run(append_end2end(raw_model(), DECODE, NMS), heads)
    assert (num_dets.dtype, boxes.dtype, scores.dtype, classes.dtype) == (np.int32, np.float32, np.float32, np.int32)
    np.testing.assert_array_equal(num_dets, golden["num_dets"])
    np.testing.assert_array_equal(classes, golden["classes"])              # -1 in the padded slots
    np.testing.assert_allclose(boxes, golden["boxes"], atol=1e-3)          # zeros in the padded slots
    np.testing.assert_allclose(scores, golden["scores"], atol=1e-6)


def test_nothing_above_conf_gives_empty_padded_outputs(golden):
    heads = [np.full_like(golden["head0"], -20.0), np.full_like(golden["head1"], -20.0)]
    num_dets, boxes, scores, classes = _run(append_end2end(raw_model(), DECODE, NMS), heads)
    assert not num_dets.any() and not boxes.any() and not scores.any() and (classes == -1).all()


@pytest.mark.parametrize("nms, message", [(NmsSpec(0.3, 0.5, 0, 24), "max_det=0"),
                                          (NmsSpec(0.3, 0.5, 30, 24), "max_det=30 must be in 1..24")])
def test_bad_caps_are_refused(nms, message):
    with pytest.raises(ValueError, match=message):
        append_end2end(raw_model(), DECODE, nms)


def test_head_count_must_match():
    with pytest.raises(ValueError, match="graph has 2 outputs for 1 heads"):
        append_end2end(raw_model(), type(DECODE)(DECODE.heads[:1], 3, (96, 64)), NMS)
