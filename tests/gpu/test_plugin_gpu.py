"""The PTX on a real GPU against the host build and the golden file, timed; the TensorRT registration.

Marked ``gpu``: they need an NVIDIA GPU with a driver and cuda-python (and TensorRT >= 10.9 for
the registration). They skip with the reason elsewhere, also where no compiler writes PTX the
driver loads (NVRTC newer than the driver is retried with nvcc when nvcc is not newer:
``gpu_kernel.compile_kernel``); this project's development machine has no GPU, so they have not
run there. The launch code is in tests/gpu/gpu_kernel.py and the order-free comparison in
tests/gpu/gpu_helpers.py, which the device check (tests/gpu/device_check.py) shares. Nothing
here needs ``../shared`` or the network.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from gpu_helpers import model_heads, random_heads, same_plugin_detections
from gpu_kernel import KernelUnavailable, open_driver, run_kernel

from yolov3_trt.plugin import host, trt_plugin
from yolov3_trt.plugin.params import PluginConfig

GOLDEN = Path(__file__).resolve().parents[1] / "plugin" / "golden" / "decode_nms_golden.npz"

pytestmark = pytest.mark.gpu
logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def cuda():
    try:
        driver, device, _ = open_driver()
    except KernelUnavailable as why:
        pytest.skip(str(why))
    yield driver, device
    driver.cuDevicePrimaryCtxRelease(device)


def _run_kernel(driver, device, outputs, config):
    """run_kernel, skipping (with the reason) where no compiler writes PTX this driver loads:
    NVRTC newer than the driver and no nvcc that is not."""
    try:
        return run_kernel(driver, device, outputs, config)
    except KernelUnavailable as why:
        pytest.skip(str(why))


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
@pytest.mark.parametrize("conf, fp16, batch", [(0.25, False, 1), (0.001, False, 4), (0.001, True, 8), (0.5, True, 2)])
def test_gpu_kernel_equals_host_build(cuda, conf, fp16, batch):
    driver, device = cuda
    size = 416
    heads, grids = model_heads("yolov3", (size, size))
    outputs = random_heads(np.random.default_rng(0), batch, heads, grids, obj_mean=-3.0, tie_step=0.25, fp16=fp16)
    config = PluginConfig.from_heads(heads, (size, size), grids, conf=conf, iou=0.45, max_det=100, pre_nms_top_k=1024)
    gpu, ms = _run_kernel(driver, device, outputs, config)
    start = time.perf_counter()
    cpu = host.run_host(outputs, config)
    cpu_ms = (time.perf_counter() - start) * 1e3
    logger.warning("decode+NMS at %d, batch %d, conf %g, %s: GPU kernel %.3f ms, host build %.3f ms", size, batch,
                   conf, "fp16" if fp16 else "fp32", ms, cpu_ms)
    same_plugin_detections(gpu, cpu)


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
@pytest.mark.parametrize("conf, fp16, batch", [(0.25, False, 1), (0.001, True, 8)])
def test_gpu_kernel_equals_host_build_two_heads(cuda, conf, fp16, batch):
    """yolov3-tiny's two heads (strides 32 and 16) at 416."""
    driver, device = cuda
    heads, grids = model_heads("yolov3-tiny", (416, 416))
    outputs = random_heads(np.random.default_rng(1), batch, heads, grids, obj_mean=-3.0, tie_step=0.25, fp16=fp16)
    config = PluginConfig.from_heads(heads, (416, 416), grids, conf=conf, iou=0.45, max_det=100, pre_nms_top_k=1024)
    gpu, _ = _run_kernel(driver, device, outputs, config)
    same_plugin_detections(gpu, host.run_host(outputs, config))


def test_gpu_kernel_gives_the_golden_detections(cuda):
    """tests/plugin/golden: the file the host build is checked against, unchanged, on the GPU."""
    driver, device = cuda
    with np.load(GOLDEN) as data:
        golden = {key: data[key] for key in data.files}
    config = trt_plugin.config_from_attributes(**json.loads(str(golden["attributes"])))
    gpu, _ = _run_kernel(driver, device, [golden["head0"], golden["head1"]], config)
    same_plugin_detections(gpu, tuple(golden[name] for name in ("num_dets", "boxes", "scores", "classes")))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed")
def test_tensorrt_registration(cuda):
    import tensorrt as trt

    if not trt_plugin.supports_aot(trt.__version__):
        pytest.skip(f"TensorRT {trt.__version__} has no AOT plugins (needs 10.9+)")
    trt_plugin.register()
    trt_plugin.register()  # idempotent
    registry = trt.get_plugin_registry()
    for heads in trt_plugin.HEAD_COUNTS:
        assert registry.get_creator(trt_plugin.op_type(heads), trt_plugin.PLUGIN_VERSION,
                                    trt_plugin.PLUGIN_NAMESPACE) is not None
