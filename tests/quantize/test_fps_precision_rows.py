"""benchmarks/fps.py: the FP16 and INT8 rows on ONNX Runtime (tiny model, one run each)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fps_rows_per_precision(tmp_path):
    precisions = ["fp32", "int8-cpu"]
    if importlib.util.find_spec("modelopt") is not None:
        precisions += ["fp16", "int8-tensorrt"]
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fps.py"), "--cfg", "yolov3-tiny", "--sizes", "96",
                           "--runs", "1", "--warmup", "0", "--no-gemm", "--backends", "onnxruntime", "--precisions",
                           ",".join(precisions), "--calib-images", "2", "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((out / "fps.json").read_text())["rows"]
    assert [r["precision"] for r in rows] == precisions
    assert all(r["backend"] == "onnxruntime" and r["fps"] > 0 for r in rows)
    assert "int8-cpu" in done.stdout
