"""The plugin's golden input/output file (tests/plugin/golden/decode_nms_golden.npz).

The host build and the numpy reference must give the stored detections bit for bit; the file
must be what its script writes (deterministic), and must exercise what it claims: both cuts
(top-K, max_det), padded slots, exact score ties, a suppression and an IoU exactly at the
threshold. tests/gpu/test_plugin_gpu.py runs the GPU kernel on the same file.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from yolov3_trt.plugin import host, trt_plugin

HERE = Path(__file__).resolve().parent / "golden"
OUTPUTS = ("num_dets", "boxes", "scores", "classes")
_spec = importlib.util.spec_from_file_location("make_golden", HERE / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


@pytest.fixture(scope="module")
def golden():
    with np.load(HERE / "decode_nms_golden.npz") as data:
        return {key: data[key] for key in data.files}


def _heads(golden) -> list[np.ndarray]:
    return [golden["head0"], golden["head1"]]


def _assert_equal(got, golden) -> None:
    for name, array in zip(OUTPUTS, got):
        assert array.dtype == golden[name].dtype and array.shape == golden[name].shape, name
        np.testing.assert_array_equal(array, golden[name], err_msg=name)


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
@pytest.mark.parametrize("threads", [1, 7])
def test_host_build_gives_the_golden_detections(golden, threads):
    config = trt_plugin.config_from_attributes(**json.loads(str(golden["attributes"])))
    _assert_equal(host.run_host(_heads(golden), config, threads=threads), golden)


def test_numpy_reference_gives_the_golden_detections(golden):
    _assert_equal(make_golden.expected(_heads(golden)), golden)


def test_the_file_is_what_its_script_writes(golden):
    fresh = make_golden.make()
    assert sorted(fresh) == sorted(golden)
    for key, value in fresh.items():
        np.testing.assert_array_equal(value, golden[key], err_msg=key)
    assert json.loads(str(golden["attributes"]))["capacity"] == make_golden.NMS["pre_nms_top_k"]


def test_the_case_exercises_both_cuts_padding_ties_and_the_threshold(golden):
    heads, nms = _heads(golden), make_golden.NMS
    num_dets = golden["num_dets"][:, 0]
    assert num_dets[0] == nms["max_det"] and 0 < num_dets[1] < nms["max_det"]   # max_det cut; padding
    assert (golden["classes"][1, num_dets[1]:] == -1).all() and not golden["scores"][1, num_dets[1]:].any()
    uncut = make_golden.expected(heads, pre_nms_top_k=None, max_det=1000)[0][:, 0]
    unsuppressed = make_golden.expected(heads, pre_nms_top_k=None, max_det=1000, iou=1.0)[0][:, 0]
    assert uncut[0] > nms["pre_nms_top_k"] and (unsuppressed > uncut).all()     # top-K cut; suppressions
    scores = golden["scores"][0, :num_dets[0]]
    assert len(np.unique(scores)) < len(scores)                                  # exact ties kept in order
    planted = golden["boxes"][0, :3]
    assert [40.0, 12.0, 56.0, 20.0] in planted.tolist()                          # IoU == iou: kept under ">"
    ge = make_golden.expected(heads, iou=float(np.nextafter(nms["iou"], 0)))      # what ">=" would give
    assert [40.0, 12.0, 56.0, 20.0] not in ge[1][0].tolist()
