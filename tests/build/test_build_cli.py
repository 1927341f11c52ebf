"""``python -m yolov3_trt.build`` without TensorRT: every step that needs no GPU runs, then exit 2.

These tests assert the path this machine takes (no TensorRT, no GPU); the GPU path is in
``tests/gpu/``. They skip where TensorRT and a GPU are present, since there the tool builds.
"""
from __future__ import annotations

import importlib.util

import onnx
import pytest
from helpers import DARKNET

from yolov3_trt.build.__main__ import _choose_flavour, main, parse_batch
from yolov3_trt.tensorrt.device import is_available
from yolov3_trt.cli.common import run
from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
from yolov3_trt.model.yolov3 import YoloV3

pytestmark = pytest.mark.skipif(is_available(), reason="TensorRT and a GPU are here: the tool builds engines")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "tiny.weights"
    model = YoloV3.from_cfg("yolov3-tiny")
    write_darknet_weights(path, model.network, random_darknet_weights(model.network, 5, head_gain=0.15))
    return path


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_fp32_exports_end2end_then_names_the_onnx(weights, tmp_path, capsys):
    out = tmp_path / "out" / "tiny.engine"
    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64", "--batch", "1:2:4",
                      "--workspace", "512", "--output", str(out)]) == 2
    onnx_path = tmp_path / "out" / "tiny-end2end.onnx"
    line = _one_line(capsys)
    assert line.startswith("error: TensorRT") or "no usable CUDA" in line or "a GPU" in line
    assert line.endswith(f"{onnx_path} is ready to build on the target device with python -m yolov3_trt.build "
                         f"--model {onnx_path} --batch 1:2:4 --workspace 512")
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["num_dets", "boxes", "scores", "classes"]
    assert not out.exists() and not out.with_name("tiny.engine.json").exists()


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None,
                    reason="INT8 calibration for TensorRT needs nvidia-modelopt[onnx] (the [quantize] extra)")
def test_int8_calibrates_then_names_the_int8_onnx(weights, tmp_path, capsys):
    out = tmp_path / "tiny.engine"
    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64", "--int8",
                      "--calib", str(DARKNET / "images"), "--calib-images", "3", "--output", str(out)]) == 2
    int8 = tmp_path / "tiny-end2end-int8.onnx"
    assert _one_line(capsys).endswith(f"{int8} is ready to build on the target device with python -m "
                                      f"yolov3_trt.build --model {int8} --batch 1:1:1")
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    from yolov3_trt.build.pipeline import read_onnx

    metadata, _, precision, uses_plugin = read_onnx(int8)
    assert (metadata.flavour, precision, uses_plugin) == ("end2end", "int8", False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-end2end-int8.onnx"]  # no intermediate files
    _assert_tail_after_quantized_heads(int8, "NonMaxSuppression")


def _assert_tail_after_quantized_heads(path, tail_op: str) -> None:
    """The tail consumes the raw heads, and no Q/DQ or Cast node was put inside the tail."""
    model = onnx.load(str(path))
    producers = {out: node for node in model.graph.node for out in node.output}
    tail = [n for n in model.graph.node if n.op_type == tail_op]
    assert len(tail) == 1
    if tail_op != "NonMaxSuppression":
        assert list(tail[0].input) == [f"head{i}" for i in range(len(tail[0].input))]
    tail_nodes = [n for n in model.graph.node if n.name.startswith("e2e/") or n.op_type == tail_op]
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in tail_nodes)
    assert all(n.name in {p.name for p in producers.values()} for n in tail_nodes)


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None,
                    reason="FP16/INT8 for TensorRT need nvidia-modelopt (the [quantize] extra)")
@pytest.mark.parametrize("precision", ["--fp16", "--int8"])
def test_precision_with_the_plugin_graph(weights, precision, tmp_path, capsys):
    """Quantization runs on ONNX Runtime, which cannot run the plugin node: the raw graph is
    quantized and the plugin node appended after; the named ONNX holds both."""
    from yolov3_trt.build.pipeline import read_onnx
    from yolov3_trt.plugin import trt_plugin

    calib = ["--calib", str(DARKNET / "images"), "--calib-images", "3"] if precision == "--int8" else []
    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64", "--flavour", "plugin",
                      precision, *calib, "--output", str(tmp_path / "t.engine")]) == 2
    name = precision[2:]
    out = tmp_path / f"tiny-plugin-{name}.onnx"
    assert _one_line(capsys).endswith(f"{out} is ready to build on the target device with python -m "
                                      f"yolov3_trt.build --model {out} --batch 1:1:1")
    metadata, props, found, uses_plugin = read_onnx(out)
    assert (metadata.flavour, found, uses_plugin) == ("plugin", name, True)
    assert props["yolov3_trt.precision"] == name and metadata.max_det == 100 and metadata.pre_nms_top_k == 1024
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    if name == "fp16":
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    _assert_tail_after_quantized_heads(out, trt_plugin.op_type(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    # the same from the exported plugin file: its tail is cut off, the heads quantized, the tail put back
    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64", "--flavour", "plugin",
                      "--output", str(tmp_path / "t.engine")]) == 2
    capsys.readouterr()
    again = tmp_path / f"tiny-plugin-{name}.onnx"
    # the first build's quantized file is there: not regenerated over it without --force (issue 13)
    before = again.read_bytes()
    assert run(main, ["--model", str(tmp_path / "tiny-plugin.onnx"), precision, *calib]) == 2
    assert _one_line(capsys) == (f"error: {again}: exists (an earlier build's ONNX?); pass --force to make it "
                                 f"again, or build it as it is: python -m yolov3_trt.build --model {again}")
    assert again.read_bytes() == before
    assert run(main, ["--model", str(tmp_path / "tiny-plugin.onnx"), precision, *calib, "--force"]) == 2
    assert _one_line(capsys).endswith(f"--model {again} --batch 1:1:1")
    node = lambda path: onnx.load(str(path)).graph.node[-1]  # noqa: E731
    assert node(again).attribute == node(tmp_path / "tiny-plugin.onnx").attribute


TINY_WEIGHTS = DARKNET / "weights" / "yolov3-tiny.weights"


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None,
                    reason="INT8 calibration for TensorRT needs nvidia-modelopt[onnx] (the [quantize] extra)")
@pytest.mark.skipif(not TINY_WEIGHTS.is_file(), reason=f"Darknet's yolov3-tiny weights are not at {TINY_WEIGHTS}")
def test_int8_within_an_ap_budget_on_the_plugin_graph(tmp_path, capsys):
    """build --int8 --max-ap-drop: the budget is measured on the plugin graph's raw heads (agreement
    with FP32 on Darknet's photos), the plugin node is put back, and the ONNX made for the device
    carries the budget (which the engine's sidecar copies with the rest of its metadata)."""
    import json

    from yolov3_trt.build.pipeline import read_onnx
    from yolov3_trt.quantize.budget import report_paths

    argv = ["--cfg", "yolov3-tiny", "--weights", str(TINY_WEIGHTS), "--size", "256", "--flavour", "plugin",
            "--int8", "--calib", str(DARKNET / "images"), "--calib-images", "3", "--max-ap-drop", "50",
            "--val", str(DARKNET / "images"), "--output", str(tmp_path / "t.engine")]
    assert run(main, argv) == 2
    out = tmp_path / "yolov3-tiny-plugin-int8.onnx"
    assert _one_line(capsys).endswith(f"--model {out} --batch 1:1:1")
    json_path, png_path = report_paths(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, json_path.name, png_path.name])
    metadata, props, precision, uses_plugin = read_onnx(out)
    assert (metadata.flavour, precision, uses_plugin) == ("plugin", "int8", True)
    budget = json.loads(props["yolov3_trt.ap_budget"])
    report = json.loads(json_path.read_text())
    assert budget["budget"] == 50.0 and budget["mode"] == "agreement with FP32" and budget["drop"] <= 50
    assert report["measured_as"].startswith("raw heads") and report["target"] == "tensorrt"
    assert report["chosen"]["k"] == budget["k"] == 0
    assert report["speed"]["tensorrt"].startswith("not measured: ")  # no TensorRT or GPU here (module skip)
    assert run(main, argv) == 2  # again: the ONNX and its report exist, refused before any work
    assert f"{out}: exists (an earlier build's ONNX?)" in _one_line(capsys)


def test_plugin_flavour_exports_the_plugin_node(weights, tmp_path, capsys):
    from yolov3_trt.build.pipeline import read_onnx
    from yolov3_trt.plugin import trt_plugin

    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64", "--flavour", "plugin",
                      "--output", str(tmp_path / "t.engine")]) == 2
    plugin = tmp_path / "tiny-plugin.onnx"
    assert _one_line(capsys).endswith(f"{plugin} is ready to build on the target device with python -m "
                                      f"yolov3_trt.build --model {plugin} --batch 1:1:1")
    metadata, _, precision, uses_plugin = read_onnx(plugin)
    assert (metadata.flavour, precision, uses_plugin) == ("plugin", "fp32", True)
    assert trt_plugin.op_type(2) in {node.op_type for node in onnx.load(str(plugin)).graph.node}


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None,
                    reason="FP16 conversion needs nvidia-modelopt (the [quantize] extra)")
def test_fp16_from_an_onnx_file(weights, tmp_path, capsys):
    from yolov3_trt.build.pipeline import read_onnx

    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64",
                      "--output", str(tmp_path / "x.engine")]) == 2
    capsys.readouterr()
    assert run(main, ["--model", str(tmp_path / "tiny-end2end.onnx"), "--fp16"]) == 2
    fp16 = tmp_path / "tiny-end2end-fp16.onnx"
    assert _one_line(capsys).endswith(f"--model {fp16} --batch 1:1:1")
    assert read_onnx(fp16)[2] == "fp16"


def test_from_an_onnx_file(weights, tmp_path, capsys):
    assert run(main, ["--cfg", "yolov3-tiny", "--weights", str(weights), "--size", "64", "--flavour", "raw",
                      "--output", str(tmp_path / "x.engine")]) == 2
    raw = tmp_path / "tiny-raw.onnx"
    capsys.readouterr()
    assert run(main, ["--model", str(raw), "--batch", "8", "--dla-core", "0", "--hardware-compatible", "ampere+",
                      "--version-compatible"]) == 2
    assert _one_line(capsys).endswith(f"--model {raw} --batch 8:8:8 --dla-core 0 --hardware-compatible ampere+ "
                                      "--version-compatible")
    assert run(main, ["--model", str(raw), "--size", "96"]) == 2
    assert "has input 64x64; --size cannot change it" in _one_line(capsys)


@pytest.mark.parametrize("argv, message", [
    ([], "nothing to build"),
    (["--model", "m.onnx", "--cfg", "yolov3"], "drop --cfg"),
    (["--model", "m.onnx", "--flavour", "raw"], "--model already is one"),
    (["--model", "missing.onnx"], "missing.onnx: no such ONNX file"),
    (["--model", "m.onnx", "--int8"], "--int8 needs calibration images"),
    (["--model", "m.onnx", "--fp16", "--max-ap-drop", "1", "--val", "v"], "--max-ap-drop is used only with --int8"),
    (["--model", "m.onnx", "--int8", "--calib", "c", "--max-ap-drop", "1"], "--max-ap-drop needs a validation set"),
    (["--model", "m.onnx", "--int8", "--calib", "c", "--holdout", "h"], "--holdout is used only with --max-ap-drop"),
])
def test_usage_errors(argv, message, capsys):
    assert run(main, argv) == 2
    assert message in _one_line(capsys)


def test_batch_and_flavour_choice():
    assert parse_batch("4") == (4, 4, 4) and parse_batch("1:4:8") == (1, 4, 8)
    for bad in ("0", "4:2:8", "1:2", "a"):
        with pytest.raises(Exception, match="MIN:OPT:MAX"):
            parse_batch(bad)
    assert _choose_flavour("auto", None) == "end2end"
    assert _choose_flavour("auto", "10.3.0.30") == "end2end"
    assert _choose_flavour("auto", "10.9.0.34") == "plugin"
    assert _choose_flavour("raw", "10.13.0.35") == "raw"
