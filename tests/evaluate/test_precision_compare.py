"""evaluate --compare: models side by side, and per-layer error that is 0 exactly where nothing changed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quantize"))
from quantize_cases import NAMES, tiny_onnx, write_images  # noqa: E402

from yolov3_trt.cli.common import run  # noqa: E402
from yolov3_trt.evaluate.__main__ import main as evaluate_main  # noqa: E402
from yolov3_trt.evaluate.layer_error import layer_errors  # noqa: E402
from yolov3_trt.quantize import quantize_int8  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    fp32 = tiny_onnx(root, size=96)
    images = write_images(root / "data" / "images", 6)
    labels = root / "data" / "labels"
    labels.mkdir()
    for i, image in enumerate(images):
        (labels / (image.stem + ".txt")).write_text(f"{i % 2} 0.5 0.5 0.3 0.4\n")
    (root / "data" / "classes.names").write_text("\n".join(NAMES) + "\n")
    int8 = quantize_int8(fp32, root / "int8-cpu.onnx", root / "data", target="cpu", num_images=4, progress=False)
    return root, fp32, int8


def _perturbed(fp32: Path, out: Path, conv_index: int) -> str:
    """A copy of ``fp32`` with one Conv's weights and bias scaled by 1.1; returns that Conv's output name."""
    model = onnx.load(str(fp32))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][conv_index]
    for init in model.graph.initializer:
        if init.name in conv.input[1:]:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.1), init.name))
    onnx.save(model, str(out))
    return conv.output[0]


def test_layer_error_is_zero_before_the_changed_layer_and_not_after(setup, tmp_path):
    _, fp32, _ = setup
    changed = _perturbed(fp32, tmp_path / "changed.onnx", 4)
    x = np.random.default_rng(0).random((3, 3, 96, 96), dtype=np.float32)
    rows = layer_errors(fp32, {"same": fp32, "changed": tmp_path / "changed.onnx"}, x, batch=2)
    assert all(r["rel_error"] == 0.0 for r in rows["same"])
    errors = [r["rel_error"] for r in rows["changed"]]
    at = [r["tensor"] for r in rows["changed"]].index(changed)
    assert errors[:at] == [0.0] * at
    assert errors[at] == pytest.approx(0.1, rel=1e-4)  # that Conv's output is exactly 1.1 times the reference
    assert all(e > 0 for e in errors[at + 1:])
    assert rows["changed"][at]["layer"] is not None


def test_compare_cli_writes_json_table_and_plot(setup, tmp_path, capsys):
    root, fp32, int8 = setup
    out = tmp_path / "report"
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), str(int8), "--calib", str(root / "data"),
                               "--calib-images", "3", "--output", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert [m["label"] for m in report["models"]] == ["FP32", "INT8 cpu entropy"]
    assert set(report["models"][0]["metrics"]) >= {"map", "ap50", "global_ap50", "global_ap"}
    rows = report["layer_errors"]["INT8 cpu entropy"]
    assert len(rows) == 13 and all(r["rel_error"] is not None and 0 < r["rel_error"] < 1 for r in rows)
    assert "| FP32 |" in (out / "compare.md").read_text() and (out / "compare.png").stat().st_size > 10_000
    assert "INT8 cpu entropy: largest layer error" in capsys.readouterr().out


def test_compare_usage_errors(setup, tmp_path, capsys):
    root, fp32, _ = setup
    assert run(evaluate_main, [str(root / "data"), "--calib", str(root / "data")]) == 2
    assert "--calib is used only with --compare" in capsys.readouterr().err
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), str(tmp_path / "nope.onnx")]) == 2
    assert "nope.onnx: no such model file" in capsys.readouterr().err
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), "--model", str(fp32)]) == 2
    assert "drop --model" in capsys.readouterr().err


def test_compare_refuses_a_file_that_is_not_onnx_before_evaluating(setup, tmp_path, capsys):
    root, fp32, _ = setup
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"not an onnx file")
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), str(junk),
                               "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model.pt: not a readable ONNX file" in err and "Traceback" not in err


def test_layer_error_refuses_files_of_another_input_size(setup, tmp_path):
    from yolov3_trt.errors import FileError

    _, fp32, _ = setup
    other = tiny_onnx(tmp_path, size=128)
    x = np.random.default_rng(0).random((1, 3, 96, 96), dtype=np.float32)
    with pytest.raises(FileError, match="input is 128x128, the images are 96x96"):
        layer_errors(fp32, {"other": other}, x)


def test_compare_calib_needs_the_fp32_file_first(setup, tmp_path, capsys):
    root, fp32, int8 = setup
    assert run(evaluate_main, [str(root / "data"), "--compare", str(int8), str(fp32), "--calib", str(root / "data"),
                               "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "must be the FP32 export" in err and "is INT8 cpu entropy" in err
    assert not (tmp_path / "out" / "compare.json").exists()


def test_compare_runs_each_file_on_its_runtime(setup, tmp_path):
    pytest.importorskip("openvino")
    root, fp32, int8 = setup
    out = tmp_path / "report"
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), f"{fp32}@openvino", f"{int8}@openvino",
                               str(int8), "--calib", str(root / "data"), "--calib-images", "3",
                               "--output", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert [(m["label"], m["runtime"]) for m in report["models"]] == [
        ("FP32", "onnxruntime"), ("FP32 on openvino", "openvino"), ("INT8 cpu entropy on openvino", "openvino"),
        ("INT8 cpu entropy", "onnxruntime")]
    assert report["models"][1]["backend"].startswith("openvino") and "f32" in report["models"][1]["backend"]
    # FP32 on OpenVINO (f32 inference) computes what ONNX Runtime computes: the same AP to float rounding
    assert report["models"][1]["metrics"]["ap50"] == pytest.approx(report["models"][0]["metrics"]["ap50"], abs=1e-6)
    assert list(report["layer_errors"]) == ["INT8 cpu entropy"]  # ONNX Runtime's, once per file


def test_compare_items_name_their_runtime_or_are_files(setup, tmp_path, capsys):
    from yolov3_trt.evaluate.compare import parse_item

    root, fp32, _ = setup
    assert parse_item(f"{fp32}@openvino-bf16") == (str(fp32), "openvino-bf16")
    assert parse_item(str(fp32)) == (str(fp32), "onnxruntime")
    odd = tmp_path / "model@v2.onnx"
    odd.write_bytes(fp32.read_bytes())
    assert parse_item(str(odd)) == (str(odd), "onnxruntime")  # an existing file keeps its @
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), f"{fp32}@tensorrt",
                               "--output", str(tmp_path / "o")]) == 2
    assert ("unknown runtime 'tensorrt' after @ (choose from onnxruntime, openvino, openvino-bf16)"
            in capsys.readouterr().err)
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), "--backend", "openvino",
                               "--output", str(tmp_path / "o")]) == 2
    assert "takes a runtime per file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_compare_with_opencvs_resize_kernel(setup, tmp_path):
    root, fp32, _ = setup
    out = tmp_path / "report"
    assert run(evaluate_main, [str(root / "data"), "--compare", str(fp32), "--resize-kernel", "opencv",
                               "--output", str(out)]) == 0
    report = json.loads((out / "compare.json").read_text())
    assert [(m["label"], m["resize_kernel"]) for m in report["models"]] == [("FP32 (opencv resize)", "opencv")]
    assert report["settings"]["resize_kernel"] == "opencv"
    assert "| FP32 (opencv resize) |" in (out / "compare.md").read_text()
