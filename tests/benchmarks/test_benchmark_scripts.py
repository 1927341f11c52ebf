"""The benchmark scripts run and write well-formed results (tiny model, one run: no timing claims)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from helpers import ROOT


def test_fps_script_writes_table_json_csv_png(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fps.py"), "--cfg", "yolov3-tiny", "--sizes",
                           "128,160", "--infer-batches", "1,2", "--runs", "2", "--warmup", "0", "--no-gemm",
                           "--precisions", "fp32",
                           "--backends", "onnxruntime,torch,torch-eager,opencv-dnn", "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "yolov3-tiny: no published row for this model at sizes 128,160" in done.stdout  # never yolov3's rows
    result = json.loads((out / "fps.json").read_text())
    rows = result["rows"]
    assert {(r["backend"], r["size"], r["batch"]) for r in rows} == {
        (b, s, n) for b in ("onnxruntime", "torch", "torch-eager", "opencv-dnn") for s in (128, 160) for n in (1, 2)}
    for r in rows:
        assert r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["fps"] > 0 and r["bflops_per_s"] > 0
        if r["scope"] == "end to end":
            assert r["preprocess_ms"] + r["infer_ms"] + r["postprocess_ms"] <= r["p99_ms"] * 1.01
    assert len(list(csv.DictReader((out / "fps.csv").open()))) == len(rows)
    assert (out / "fps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_model_against_its_own_published_row():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fps

    source, rows = fps.paper_rows("yolov3-tiny", [320, 416])
    assert source == "Darknet website (Titan X)" and [r["size"] for r in rows] == [416]
    assert rows[0]["fps"] == pytest.approx(220) and rows[0]["bflops_per_s"] == pytest.approx(5.56 * 220)
    assert rows[0]["ap50"] == 33.1
    source, rows = fps.paper_rows("yolov3", [320, 416, 608])
    assert source.startswith("YOLOv3 paper") and [r["ms"] for r in rows] == [22.0, 29.0, 51.0]
    assert rows[1]["bflops_per_s"] == pytest.approx(65.864 / 0.029)
    assert fps.paper_rows("yolov3-spp", [608])[1][0]["fps"] == pytest.approx(20)
    assert fps.paper_rows("my.cfg", [416]) == ("", [])


def test_fps_tensorrt_rows_fill_in_or_say_why_not(tmp_path):
    """FP32/FP16/INT8 x batch rows for TensorRT: measured where it runs, "not available: why" here."""
    from yolov3_trt.build import availability

    ok, reason = availability()
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fps.py"), "--cfg", "yolov3-tiny", "--sizes", "96",
                           "--runs", "1", "--warmup", "0", "--no-gemm", "--backends", "tensorrt", "--trt-batch", "1,8",
                           "--precisions", "fp32,fp16,int8-cpu,int8-tensorrt", "--calib-images", "2",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "fps.json").read_text())["rows"]
    assert [(r["precision"], r["batch"]) for r in rows] == [
        (p, n) for n in (1, 8) for p in ("fp32", "fp16", "int8-tensorrt")]  # no engine of the CPU INT8 file
    for r in rows:
        if ok:
            assert r["fps"] > 0 and r["scope"] == "end to end"
        else:
            assert r["scope"] == f"not available: {reason}" and "p50_ms" not in r
            assert f"tensorrt     {r['precision']:<13} {r['size']:>4} {r['batch']:>5} not available" in done.stdout
    assert len(list(csv.DictReader((out / "fps.csv").open()))) == len(rows)


def test_ort_settings_script(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ort_settings.py"), "--cfg", "yolov3-tiny",
                           "--size", "128", "--runs", "1", "--warmup", "0", "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "ort_settings.json").read_text())["results"]
    assert results[0]["setting"] == "onnxruntime defaults" and len(results) == 9
    assert (out / "ort_settings.png").exists()


FPS_ERRORS = {  # flags -> words of the one line fps.py prints before building anything (exit 2)
    "size not a multiple of 32": (["--sizes", "100"], "argument --sizes: '100': width and height must be positive "
                                                      "multiples of 32"),
    "size too large": (["--sizes", "320,99999968"], "argument --sizes: '99999968': each side must be at most 8192"),
    "size not square": (["--sizes", "320x256"], "argument --sizes: '320x256': the benchmark sizes are square"),
    "no runs": (["--runs", "0"], "argument --runs: 0 must be >= 1"),
    "negative warm-up": (["--warmup", "-1"], "argument --warmup: -1 must be >= 0"),
    "batch 0": (["--infer-batches", "1,0"], "argument --infer-batches: 0 must be >= 1"),
    "tensorrt batch": (["--trt-batch", "x"], "argument --trt-batch: expected an integer, got 'x'"),
    "threads": (["--threads", "0"], "argument --threads: 0 must be >= 1"),
    "unknown backend": (["--backends", "onnxruntime,tflite"],
                        "argument --backends: unknown 'tflite' (choose from onnxruntime, openvino, tensorrt, torch, "
                        "torch-eager, opencv-dnn, openvino-net)"),
    "unknown precision": (["--precisions", "fp32,fp8"], "argument --precisions: unknown 'fp8' (choose from fp32, "
                                                         "bf16, fp16, int8-cpu, int8-tensorrt)"),
    "unknown resize kernel": (["--resize-kernels", "darknet,cubic"],
                              "argument --resize-kernels: unknown 'cubic' (choose from darknet, opencv)"),
    "unknown cfg": (["--cfg", "yolov9"], "yolov9: no such cfg file, nor a built-in model"),
    "missing weights": (["--weights", "{tmp}/missing.weights"], "missing.weights: no such weights file"),
    "weights of another cfg": (["--weights", "{tmp}/short.weights"], "short.weights: --weights: <built-in yolov3-tiny> "
                                                                     "needs 35,434,952 bytes, the file has 1,020"),
    "missing calibration images": (["--precisions", "int8-cpu", "--backends", "onnxruntime", "--calib",
                                    "{tmp}/no-images"],
                                   "no-images: no such calibration folder (--calib, for int8-cpu)"),
}


@pytest.mark.parametrize("case", FPS_ERRORS)
def test_fps_refuses_bad_arguments_up_front_with_one_line(case, tmp_path):
    flags, words = FPS_ERRORS[case]
    (tmp_path / "short.weights").write_bytes(bytes(20) + bytes(1000))  # a version-0 header, then too few floats
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    cfg = [] if "--cfg" in flags else ["--cfg", "yolov3-tiny"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fps.py"), *cfg, "--no-gemm", "--output",
                           str(tmp_path / "out"), *flags], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


def test_fps_openvino_rows_beside_onnx_runtime(tmp_path):
    pytest.importorskip("openvino")
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fps.py"), "--cfg", "yolov3-tiny",
                           "--sizes", "128", "--runs", "2", "--warmup", "0", "--no-gemm", "--precisions", "fp32,bf16",
                           "--backends", "onnxruntime,openvino,openvino-net", "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "fps.json").read_text())["rows"]
    # bf16 is OpenVINO's inference precision of the FP32 file: no ONNX Runtime row for it
    assert [(r["backend"], r["precision"], r["scope"]) for r in rows] == [
        ("onnxruntime", "fp32", "end to end"), ("openvino", "fp32", "end to end"), ("openvino", "bf16", "end to end"),
        ("openvino-net", "fp32", "forward only"), ("openvino-net", "bf16", "forward only")]
    assert all(r["p50_ms"] > 0 for r in rows)


def test_fps_detector_rows_once_per_resize_kernel(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fps.py"), "--cfg", "yolov3-tiny", "--sizes", "96",
                           "--runs", "2", "--warmup", "0", "--no-gemm", "--precisions", "fp32",
                           "--backends", "onnxruntime,torch-eager", "--resize-kernels", "darknet,opencv",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "fps.json").read_text())["rows"]
    # the kernels of one configuration side by side; forward-only rows have no resize (and no key)
    assert [(r["backend"], r["precision"], r.get("resize_kernel")) for r in rows] == [
        ("onnxruntime", "fp32", "darknet"), ("onnxruntime", "fp32", "opencv"), ("torch-eager", "fp32", None)]
    assert all(r["p50_ms"] > 0 for r in rows)
    assert "fp32 (opencv resize)" in done.stdout and "fp32 (darknet resize)" not in done.stdout
    shown = list(csv.DictReader((out / "fps.csv").open()))
    assert [(r["precision"], r["resize_kernel"]) for r in shown] == [
        ("fp32", "darknet"), ("fp32 (opencv resize)", "opencv"), ("fp32", "")]
