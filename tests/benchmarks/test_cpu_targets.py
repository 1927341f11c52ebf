"""benchmarks/cpu_targets.py: the CPU targets computed from the rows of one fps.py run."""
from __future__ import annotations

import json
import sys

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import cpu_targets  # noqa: E402


def _row(backend, precision, p50, infer=None, pre=1.0, post=0.5):
    end_to_end = backend != "openvino-net"
    return {"backend": backend, "precision": precision, "size": 416, "batch": 1, "p50_ms": p50,
            "infer_ms": infer if infer is not None else p50, "preprocess_ms": pre if end_to_end else None,
            "postprocess_ms": post if end_to_end else None}


ROWS = [_row("onnxruntime", "fp32", 300.0, 298.0), _row("onnxruntime", "int8-cpu", 95.0, 93.0),
        _row("openvino", "fp32", 310.0, 308.0), _row("openvino", "bf16", 160.0, 158.0),
        _row("openvino", "int8-tensorrt", 86.0, 84.0), _row("openvino-net", "int8-tensorrt", 83.0),
        _row("openvino-net", "bf16", 150.0), {"backend": "tensorrt", "precision": "fp32", "size": 416, "batch": 1,
                                              "scope": "not available: no GPU"}]


def test_speed_targets_use_the_best_detector_and_the_fastest_int8_network(monkeypatch):
    monkeypatch.setattr(cpu_targets, "INACCURATE", {("openvino", "int8-tensorrt")})  # a configuration set aside
    s = cpu_targets.speed_targets(cpu_targets._measured(ROWS, 416))
    assert s["best"]["backend"] == "openvino" and s["best"]["precision"] == "int8-tensorrt"
    assert s["fastest_int8_network"] == {"backend": "openvino-net", "precision": "int8-tensorrt", "ms": 83.0}
    assert s["best_over_fastest_int8"] == pytest.approx(86 / 83) and s["pass_within_1_05"]
    assert s["speedup_over_fp32_onnxruntime"] == pytest.approx(300 / 86) and s["pass_3x_fp32"]
    # the best configuration whose accuracy is the file's: not the one set aside
    assert s["best_accurate"]["backend"] == "onnxruntime" and s["best_accurate"]["precision"] == "int8-cpu"
    assert s["best_accurate_over_fastest_int8"] == pytest.approx(95 / 83)
    assert s["best_accurate_speedup_over_fp32_onnxruntime"] == pytest.approx(300 / 95)


def test_bf16_needs_the_cpu_flag_and_takes_the_accuracy_from_compare():
    compare = {"models": [{"label": "FP32", "metrics": {"ap50": 0.8331}},
                          {"label": "FP32 on openvino-bf16", "metrics": {"ap50": 0.8320}}]}
    b = cpu_targets.bf16_target(ROWS, compare, ["avx2", "avx512_bf16"])
    assert b["speedup_over_fp32_openvino"] == pytest.approx(310 / 160) and b["pass_1_8x"]
    assert b["ap50_drop_points"] == pytest.approx(0.11) and b["pass_within_0_2_ap50"]
    assert cpu_targets.bf16_target(ROWS, compare, ["avx2", "fma"])["status"].startswith("not measured")


def test_the_script_writes_its_report_and_refuses_a_missing_run(tmp_path, capsys):
    from yolov3_trt.cli.common import run

    fps = tmp_path / "fps.json"
    fps.write_text(json.dumps({"rows": ROWS, "machine": {"cpu": "x", "flags": ["avx512_bf16"]}, "threads": 2}))
    assert run(cpu_targets.main, ["--fps-json", str(fps), "--compare-json", str(tmp_path / "none.json")]) == 0
    report = json.loads((tmp_path / "cpu_targets.json").read_text())
    assert report["speed"]["pass_3x_fp32"] and "ap50_drop_points" not in report["bf16"]
    assert "target <= 1.05: pass" in capsys.readouterr().out
    assert run(cpu_targets.main, ["--fps-json", str(tmp_path / "missing.json")]) == 2
    assert "no such fps.json" in capsys.readouterr().err


def test_every_resize_kernel_competes_and_the_report_names_the_best_ones(tmp_path, capsys, monkeypatch):
    from yolov3_trt.cli.common import run

    monkeypatch.setattr(cpu_targets, "INACCURATE", {("openvino", "int8-tensorrt")})  # a configuration set aside
    fast = {**_row("openvino", "int8-tensorrt", 84.0, 83.5, pre=0.3), "resize_kernel": "opencv"}
    fast_cpu = {**_row("onnxruntime", "int8-cpu", 93.0, 92.5, pre=0.3), "resize_kernel": "opencv"}
    slow_fp32 = {**_row("onnxruntime", "fp32", 290.0, 289.5, pre=0.3), "resize_kernel": "opencv"}
    rows = [*ROWS, fast, fast_cpu, slow_fp32]
    s = cpu_targets.speed_targets(cpu_targets._measured(rows, 416))
    assert (s["best"]["backend"], s["best"]["precision"], s["best"]["resize_kernel"]) == (
        "openvino", "int8-tensorrt", "opencv")
    assert s["best_accurate"]["resize_kernel"] == "opencv" and s["best_accurate"]["p50_ms"] == 93.0
    assert s["best_over_fastest_int8"] == pytest.approx(84 / 83)
    # the FP32 baseline is Darknet's resize, never the opencv row
    assert s["speedup_over_fp32_onnxruntime"] == pytest.approx(300 / 84)
    assert s["best_darknet_resize"]["resize_kernel"] == "darknet" and s["best_darknet_resize"]["p50_ms"] == 86.0
    assert s["best_darknet_resize_over_fastest_int8"] == pytest.approx(86 / 83)
    # a run without --resize-kernels: Darknet's rows, as before
    plain = cpu_targets.speed_targets(cpu_targets._measured(ROWS, 416))
    assert plain["best"]["resize_kernel"] == "darknet" and plain["best_darknet_resize"] == plain["best"]

    fps = tmp_path / "fps.json"
    fps.write_text(json.dumps({"rows": rows, "machine": {"cpu": "x", "flags": []}, "threads": 2}))
    assert run(cpu_targets.main, ["--fps-json", str(fps), "--compare-json", str(tmp_path / "none.json")]) == 0
    out = capsys.readouterr().out
    assert "best CPU Detector: openvino int8-tensorrt (opencv resize) 84.0 ms" in out
    assert "best with Darknet's exact resize: openvino int8-tensorrt 86.0 ms" in out
    assert json.loads((tmp_path / "cpu_targets.json").read_text())["speed"]["best"]["resize_kernel"] == "opencv"
