"""python -m yolov3_trt.quantize: writes the file, one-line errors with exit 2, shared flags."""
from __future__ import annotations

import argparse
import importlib.util

import pytest
from quantize_cases import tiny_onnx, write_images

from yolov3_trt.calibration import DEFAULT_NUM_IMAGES
from yolov3_trt.cli.common import CALIB_IMAGES, add_quantize_args, make_parser, run
from yolov3_trt.quantize.__main__ import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("qcli")
    write_images(root / "calib", 3)
    return tiny_onnx(root, size=96), root / "calib"


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_int8_cpu_writes_the_default_name(model, capsys):
    onnx_path, calib = model
    assert run(main, [str(onnx_path), "--int8", "--target", "cpu", "--calib", str(calib), "--calib-images", "3",
                      "--calib-method", "max"]) == 0
    out = onnx_path.with_name(onnx_path.stem + "-int8-cpu.onnx")
    assert out.is_file() and "INT8 for cpu, max calibration on 3 images" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("modelopt") is None, reason="nvidia-modelopt is not installed")
def test_fp16_with_output(model, tmp_path, capsys):
    onnx_path, _ = model
    assert run(main, ["--model", str(onnx_path), "--fp16", "--output", str(tmp_path / "half.onnx")]) == 0
    assert (tmp_path / "half.onnx").is_file()


@pytest.mark.parametrize("argv, message", [
    (["{m}", "--int8"], "--int8 needs calibration images"),
    (["{m}"], "choose a precision"),
    (["--fp16"], "no model"),
    (["{m}", "--fp16", "--calib", "{c}"], "--calib is used only with --int8"),
    (["{m}", "--fp16", "--calib-images", "4", "--calib-cache", "{e}"],
     "--calib-images, --calib-cache are used only with --int8"),
    (["{m}", "--fp16", "--target", "cpu"], "--target is used only with --int8"),
    (["{m}", "--int8", "--calib", "{e}", "--target", "cpu"], "empty: no images found"),
    (["{m}", "--int8", "--calib", "{c}", "--target", "cpu"], "has 3 images but 128 calibration images"),
    (["{m}", "--int8", "--calib", "{c}", "--target", "cpu", "--calib-images", "2", "--size", "128"],
     "input is 96x96, not 128x128"),
    (["{m}", "--int8", "--calib", "{c}", "--calib-method", "percentile"], "not offered by ModelOpt"),
    (["{m}", "--fp16", "--output", "{m}"], "is an input of this run; choose another --output"),
    (["{c}/img000.png", "--int8", "--calib", "{c}", "--target", "cpu", "--calib-images", "2"], "not a readable ONNX"),
])
def test_user_errors_exit_2_with_one_line(model, tmp_path, capsys, argv, message):
    onnx_path, calib = model
    (tmp_path / "empty").mkdir()
    filled = [a.format(m=onnx_path, c=calib, e=tmp_path / "empty") for a in argv]
    out = tmp_path / "never.onnx"
    if "--output" not in filled:
        filled += ["--output", str(out)]
    assert run(main, filled) == 2
    assert message in _error(capsys)
    assert not out.exists()


def test_shared_flag_group():
    parser = make_parser("x", "x")
    add_quantize_args(parser)
    args = parser.parse_args(["--int8", "--calib", "imgs", "--calib-method", "max", "--calib-images", "16",
                              "--calib-seed", "3", "--calib-cache", "c"])
    assert (args.int8, args.fp16, args.calib, args.calib_method, args.calib_images, args.calib_seed,
            args.calib_cache) == (True, False, "imgs", "max", 16, 3, "c")
    assert parser.parse_args([]).calib_images == CALIB_IMAGES == DEFAULT_NUM_IMAGES
    with pytest.raises(SystemExit):
        parser.parse_args(["--fp16", "--int8"])
    assert isinstance(parser, argparse.ArgumentParser)


@pytest.mark.parametrize("flags", [["--fp16"], ["--int8", "--calib", "{c}", "--calib-images", "2"]])
def test_without_modelopt_one_line_and_no_output(model, tmp_path, capsys, monkeypatch, flags):
    onnx_path, calib = model
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "modelopt" else real(name, *a))
    out = tmp_path / "never.onnx"
    assert run(main, [str(onnx_path), *(f.format(c=calib) for f in flags), "--output", str(out)]) == 2
    assert "need NVIDIA ModelOpt: pip install -e .[quantize]" in _error(capsys)
    assert not out.exists()
