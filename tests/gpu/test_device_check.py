"""The device check (device_check.py, device_sections.py) keeps working in CI, where every GPU
section skips.

Not marked ``gpu``: these run anywhere. The script runs in a subprocess and must write its JSON
and Markdown with every section's status and exit 0; its sections' code runs here too, on fakes
where a GPU is needed (a stand-in kernel that returns the host build's detections, reordered or
broken) and on the CPU where the code allows (PyTorch FP32, ONNX Runtime's CPU provider); and
the model, the plugin modules and the script import without OpenCV, onnx or ONNX Runtime, as on
a bare GPU machine.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATUSES = {"passed", "failed", "skipped", "measured", "error"}


def _env(out: Path) -> dict:
    return {**os.environ, "OUT": str(out), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_device_check_writes_every_section(tmp_path):
    done = subprocess.run([sys.executable, str(HERE / "device_check.py"), "--launches", "5", "--iterations", "2"],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads((tmp_path / "device_check.json").read_text())
    failed = report["sections"].get("kernel_vs_host", {}).get("status") == "failed"
    assert done.returncode == (1 if failed else 0), done.stdout + done.stderr
    assert set(report["sections"]) == {"kernel_vs_host", "kernel_timing", "onnxruntime_cuda", "torch_fp16"}
    for name, section in report["sections"].items():
        assert section["status"] in STATUSES, (name, section)
        assert section["status"] != "error", (name, section.get("error"))
        if section["status"] == "skipped":
            assert section["reason"], name
    machine = report["machine"]
    for key in ("gpu", "driver_cuda", "cpu", "python", "numpy", "torch", "cupy", "cuda_python", "nvcc", "nvrtc"):
        assert key in machine, key
    text = (tmp_path / "device_check.md").read_text()
    for title in ("## Machine", "## a. Kernel", "## b. Kernel time", "## c. ONNX Runtime", "## d. PyTorch FP16"):
        assert title in text
    assert report["exit_status"] == done.returncode


def test_device_check_sh_is_executable_bash():
    script = HERE / "device_check.sh"
    assert os.access(script, os.X_OK) and script.read_text().startswith("#!/usr/bin/env bash")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


class _FakeKernel:
    """DeviceKernel's interface over the host build: the GPU's answer with each image's rows reversed
    (order must not matter), or broken (one box moved)."""

    broken = False

    def __init__(self, driver, device, config, *, fp16):
        self.config, self.compiler = config, "fake"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def run(self, outputs):
        from yolov3_trt.plugin import host

        num_dets, boxes, scores, classes = (a.copy() for a in host.run_host(outputs, self.config))
        for b, n in enumerate(num_dets[:, 0]):
            for array in (boxes, scores, classes):
                array[b, :n] = array[b, :n][::-1].copy()
        if self.broken and num_dets[0, 0]:
            boxes[0, 0, 0] += 3.0
        return num_dets, boxes, scores, classes

    def time(self, outputs, *, warmup, launches):
        return [40.0 + i % 3 for i in range(launches)]


@pytest.fixture
def fake_gpu(monkeypatch):
    from yolov3_trt.plugin import host

    if not host.available():
        pytest.skip("host library not built (pip install -e .)")
    import gpu_kernel

    class Driver:
        def cuDevicePrimaryCtxRelease(self, device):
            return (0,)

    monkeypatch.setattr(gpu_kernel, "open_driver", lambda index=0: (Driver(), 0, None))
    monkeypatch.setattr(gpu_kernel, "DeviceKernel", _FakeKernel)
    monkeypatch.setattr(_FakeKernel, "broken", False)
    return _FakeKernel


def test_kernel_sections_compare_as_sets_and_report_the_target(fake_gpu, tmp_path):
    import device_check
    import device_sections

    compare, timing = device_sections.kernel_sections(launches=7, warmup=1)
    assert compare["status"] == "passed", [c for c in compare["cases"] if c["status"] != "passed"]
    assert len(compare["cases"]) == len(timing["cases"]) == 16  # 2 models x 2 dtypes x 2 confs x 2 batches
    assert {(c["model"], c["heads"]) for c in compare["cases"]} == {("yolov3", 3), ("yolov3-tiny", 2)}
    assert {c["batch"] for c in compare["cases"]} == {1, 8} and {c["conf"] for c in compare["cases"]} == {0.001, 0.25}
    assert all(c["median_us"] == 41.0 and c["launches"] == 7 for c in timing["cases"])
    assert timing["target"] == {"fp32": {"median_us": 41.0, "met": True}, "fp16": {"median_us": 41.0, "met": True}}
    fake_gpu.broken = True  # a comparison that fails: exit status 1, the files still written
    assert device_check.main(["--out", str(tmp_path), "--launches", "2", "--iterations", "1"]) == 1
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["exit_status"] == 1 and report["sections"]["kernel_vs_host"]["status"] == "failed"
    assert "boxes" in report["sections"]["kernel_vs_host"]["cases"][0]["problem"]
    assert "| yolov3-tiny | fp16 | 8 | 0.25 | fake | failed |" in (tmp_path / "device_check.md").read_text()


def test_torch_and_onnxruntime_sections_on_the_cpu():
    pytest.importorskip("torch")
    import device_sections
    from gpu_helpers import network_bflops

    assert round(network_bflops("yolov3"), 3) == 65.864 and round(network_bflops("yolov3-tiny"), 3) == 5.565
    section = device_sections.torch_fp16(2, device="cpu", models=("yolov3-tiny",), batches=(1, 2))
    assert section["status"] == "measured" and [r["batch"] for r in section["rows"]] == [1, 2]
    row = section["rows"][1]
    assert row["finite"] and row["bflops_per_image"] == 5.565 and row["fps"] > 0
    assert np.isclose(row["tflop_per_s"], 5.565 * 2 / row["median_ms"], rtol=0.02, atol=1e-3)  # 3 decimals
    section = device_sections.onnxruntime_cuda(2, cfg="yolov3-tiny", provider="CPUExecutionProvider")
    assert section["status"] == "measured" and section["median_ms"] > 0 and section["model"] == "yolov3-tiny"
    assert device_sections.onnxruntime_cuda(1, provider="NoSuchExecutionProvider")["status"] == "skipped"


BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("cv2", "onnx", "onnxruntime", "onnxslim", "tensorrt", "PIL", "tqdm"):
            raise ImportError(f"{name} is not on this machine")
sys.meta_path.insert(0, Block())
"""


def test_model_and_device_check_need_neither_opencv_nor_onnx(tmp_path):
    """A bare GPU machine may lack OpenCV, onnx and ONNX Runtime: the model (torch + numpy), the
    plugin modules and the device check still import, and its ONNX Runtime section skips."""
    code = BLOCK + f"""
sys.path[:0] = [{str(HERE)!r}, {str(ROOT)!r}]
import yolov3_trt.model.yolov3, yolov3_trt.plugin.host, yolov3_trt.plugin.ptx, yolov3_trt.plugin.params
import device_check, device_sections, gpu_helpers, gpu_kernel
section = device_sections.onnxruntime_cuda(1)
assert section["status"] == "skipped" and "onnxruntime is not installed" in section["reason"], section
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout + done.stderr
