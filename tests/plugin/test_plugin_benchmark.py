"""benchmarks/postprocess.py runs and writes well-formed results (tiny model, one run: no timing claims)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from yolov3_trt.plugin import host


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
def test_postprocess_benchmark_script(tmp_path):
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "postprocess.py"), "--cfg", "yolov3-tiny",
                           "--size", "160", "--confs", "0.3", "--runs", "1", "--warmup", "0", "--no-trained",
                           "--output", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads((out / "postprocess.json").read_text())["rows"]
    assert {(r["heads"], r["postprocessor"]) for r in rows} == {
        (h, p) for h in ("yolov3-tiny random weights", "yolov3-tiny random, head gain 0.15")
        for p in ("numpy", "host library")}
    assert all(r["p50_ms"] > 0 for r in rows)
    assert (out / "postprocess.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
