"""The CUDA/TensorRT probe never raises or crashes: every missing piece becomes a reason."""
from __future__ import annotations

import subprocess
import sys
import types

import pytest
from helpers import ROOT, SHARED

from yolov3_trt.tensorrt import device as probe

CHECKER = SHARED / "trt-api" / "check_trt_names.py"


def test_real_probe_on_this_machine_returns_a_reason_or_a_device():
    found, reason = probe.probe_cuda_device()
    assert (found is None) == bool(reason)
    ok, why = probe.availability.__wrapped__()
    assert isinstance(ok, bool) and why


def test_without_cuda_python(monkeypatch):
    def missing():
        raise ImportError("No module named 'cuda'")
    monkeypatch.setattr(probe, "cuda_runtime", missing)
    assert probe.probe_cuda_device() == (None, "cuda-python is not installed (No module named 'cuda'); "
                                               "pip install cuda-python")


class FakeRuntime(types.SimpleNamespace):
    """cuda-python's runtime API shape: every call returns (error, value...)."""

    class cudaError_t:  # noqa: N801 - cuda-python's name
        cudaSuccess = 0
        cudaErrorInsufficientDriver = 35


def _runtime(count=1, count_err=0, raises=None):
    def get_count():
        if raises:
            raise raises
        return count_err, count
    props = types.SimpleNamespace(name=b"Orin\x00\x00", major=8, minor=7, totalGlobalMem=30 << 30)
    return FakeRuntime(cudaGetDeviceCount=get_count, cudaGetDeviceProperties=lambda i: (0, props),
                       cudaDriverGetVersion=lambda: (0, 12060),
                       cudaGetErrorString=lambda e: (0, b"CUDA driver version is insufficient"))


@pytest.mark.parametrize("runtime, reason", [
    (_runtime(count_err=35), "no usable CUDA device: CUDA driver version is insufficient"),
    (_runtime(count=0), "no CUDA device found"),
    (_runtime(raises=OSError("libcuda.so.1: cannot open shared object file")),
     "no usable CUDA driver (OSError: libcuda.so.1: cannot open shared object file)"),
])
def test_no_device_reasons(monkeypatch, runtime, reason):
    monkeypatch.setattr(probe, "cuda_runtime", lambda: runtime)
    assert probe.probe_cuda_device() == (None, reason)


def test_device_fields(monkeypatch):
    monkeypatch.setattr(probe, "cuda_runtime", lambda: _runtime(count=1))
    found, reason = probe.probe_cuda_device()
    assert reason == "" and found == probe.CudaDevice(0, "Orin", (8, 7), 30 << 30, 12060) and found.sm == "8.7"
    assert probe.probe_cuda_device(3) == (None, "CUDA device 3 does not exist (1 found)")


def test_availability_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(probe, "tensorrt_module", lambda: (types.SimpleNamespace(__version__="10.3.0.30"), ""))
    monkeypatch.setattr(probe, "cuda_runtime", lambda: _runtime(count=0))
    assert probe.availability.__wrapped__() == (False, "TensorRT 10.3.0.30 is installed but no CUDA device found")
    monkeypatch.setattr(probe, "tensorrt_module", lambda: (None, "TensorRT is not installed"))
    assert probe.availability.__wrapped__() == (False, "TensorRT is not installed")


@pytest.mark.parametrize("version, aot", [("10.3.0.30", False), ("10.8.0.43", False), ("10.9.0.34", True),
                                          ("10.13.0.35", True), ("11.4.0", True)])
def test_aot_plugin_support_by_version(version, aot):
    assert probe.supports_aot_plugin(version) is aot


@pytest.mark.skipif(not CHECKER.is_file(), reason=f"{CHECKER} not found (it lives in the shared folder)")
def test_tensorrt_names_exist_in_real_releases():
    done = subprocess.run([sys.executable, str(CHECKER), "yolov3_trt"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    checked = int(done.stdout.strip().splitlines()[-1].split()[0])
    assert checked >= 50  # the builder, runtime and backend code is really seen by the checker


def test_version_parsing_and_timing_cache_location(monkeypatch, tmp_path):
    from yolov3_trt.build.pipeline import default_timing_cache
    from yolov3_trt.build.steps import load_timing_cache

    assert probe.parse_version("10.3.0.30") == (10, 3, 0, 30) and probe.parse_version("11.4.0.dev1") == (11, 4, 0)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = default_timing_cache("10.3.0.30", probe.CudaDevice(0, "NVIDIA Jetson AGX Orin", (8, 7), 1, 1))
    assert path == tmp_path / "yolov3_trt" / "timing-trt10.3.0.30-nvidia-jetson-agx-orin-sm8.7.cache"
    assert load_timing_cache(path) is None and load_timing_cache(None) is None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"cache")
    assert load_timing_cache(path) == b"cache"
