"""The PTX on a real GPU against the host build, timed; and the TensorRT registration.

Marked ``gpu``: they need an NVIDIA GPU with a driver and cuda-python (and TensorRT >= 10.9 for
the registration). They skip with the reason elsewhere; this project's development machine has
no GPU, so they have not run there.
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import time

import numpy as np
import pytest
from plugin_cases import random_outputs, yolov3_heads

from yolov3_trt.plugin import host, ptx
from yolov3_trt.plugin.params import PluginConfig, launch_dims
from yolov3_trt.plugin.sources import KERNEL_NAME

pytestmark = pytest.mark.gpu
logger = logging.getLogger(__name__)


def _ok(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA driver call failed: {err}")
    return rest[0] if len(rest) == 1 else rest


@pytest.fixture(scope="module")
def cuda():
    try:
        from cuda.bindings import driver
    except ImportError:
        pytest.skip("cuda-python is not installed")
    try:
        (err,) = driver.cuInit(0)
    except Exception as exc:  # cuda-python raises when libcuda itself is missing
        pytest.skip(f"no CUDA driver here ({type(exc).__name__})")
    if int(err) != 0:
        pytest.skip(f"no CUDA GPU here ({err})")
    device = _ok(driver.cuDeviceGet(0))
    context = _ok(driver.cuDevicePrimaryCtxRetain(device))
    _ok(driver.cuCtxSetCurrent(context))
    yield driver, device
    driver.cuDevicePrimaryCtxRelease(device)


def _arch(driver, device) -> str:
    attr = driver.CUdevice_attribute
    major = _ok(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device))
    minor = _ok(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device))
    return f"compute_{major}{minor}"


def run_kernel(driver, device, outputs, config: PluginConfig, repeats: int = 20):
    """Launch the PTX on ``outputs``; the four outputs and the mean kernel time in ms."""
    fp16 = outputs[0].dtype == np.float16
    code = ptx.compile_ptx(config, fp16=fp16, arch=_arch(driver, device))
    module = _ok(driver.cuModuleLoadData(code + b"\0"))
    function = _ok(driver.cuModuleGetFunction(module, KERNEL_NAME.encode()))
    batch, k = outputs[0].shape[0], config.max_det
    results = [np.zeros((batch, 1), np.int32), np.zeros((batch, k, 4), np.float32), np.zeros((batch, k), np.float32),
               np.zeros((batch, k), np.int32)]
    arrays = [np.ascontiguousarray(o) for o in outputs]
    buffers = [_ok(driver.cuMemAlloc(max(a.nbytes, 1))) for a in arrays + results]
    try:
        for buf, a in zip(buffers, arrays):
            _ok(driver.cuMemcpyHtoD(buf, a.ctypes.data, a.nbytes))
        values = (*buffers[:len(arrays)], batch, *buffers[len(arrays):])
        types = (*[None] * len(arrays), ctypes.c_int, *[None] * 4)
        (grid, block) = launch_dims(batch)
        start, stop = _ok(driver.cuEventCreate(0)), _ok(driver.cuEventCreate(0))
        _ok(driver.cuLaunchKernel(function, *grid, *block, 0, 0, (values, types), 0))  # warm-up
        _ok(driver.cuEventRecord(start, 0))
        for _ in range(repeats):
            _ok(driver.cuLaunchKernel(function, *grid, *block, 0, 0, (values, types), 0))
        _ok(driver.cuEventRecord(stop, 0))
        _ok(driver.cuEventSynchronize(stop))
        elapsed = _ok(driver.cuEventElapsedTime(start, stop)) / repeats
        for buf, r in zip(buffers[len(arrays):], results):
            _ok(driver.cuMemcpyDtoH(r.ctypes.data, buf, r.nbytes))
    finally:
        for buf in buffers:
            driver.cuMemFree(buf)
        driver.cuModuleUnload(module)
    return results, elapsed


@pytest.mark.skipif(not host.available(), reason="host library not built (pip install -e .)")
@pytest.mark.parametrize("conf, fp16, batch", [(0.25, False, 1), (0.001, False, 4), (0.001, True, 8), (0.5, True, 2)])
def test_gpu_kernel_equals_host_build(cuda, conf, fp16, batch):
    driver, device = cuda
    size, classes = 416, 80
    outputs = random_outputs(np.random.default_rng(0), batch, classes, size, obj_mean=-3.0, tie_step=0.25, fp16=fp16)
    config = PluginConfig.from_heads(yolov3_heads(classes), (size, size), [o.shape[2:] for o in outputs], conf=conf,
                                     iou=0.45, max_det=100, capacity=1024)
    gpu, ms = run_kernel(driver, device, outputs, config)
    start = time.perf_counter()
    cpu = host.run_host(outputs, config)
    cpu_ms = (time.perf_counter() - start) * 1e3
    logger.warning("decode+NMS at %d, batch %d, conf %g, %s: GPU kernel %.3f ms, host build %.3f ms", size, batch,
                   conf, "fp16" if fp16 else "fp32", ms, cpu_ms)
    _same_detections(gpu, cpu)


def _same_detections(gpu, cpu) -> None:
    """The same kept detections per image. Order may differ only where scores tie within an ulp:
    CUDA's double exp/log are not guaranteed to round like glibc's, which can swap two (box, class)
    pairs of (nearly) equal score, so each image's rows are compared sorted by class and box."""
    np.testing.assert_array_equal(gpu[0], cpu[0])
    for b, n in enumerate(cpu[0][:, 0]):
        rows = []
        for out in (gpu, cpu):
            boxes, scores, classes = out[1][b, :n], out[2][b, :n], out[3][b, :n]
            order = np.lexsort((np.round(boxes[:, 1], 2), np.round(boxes[:, 0], 2), classes))
            rows.append((boxes[order], scores[order], classes[order]))
        np.testing.assert_array_equal(rows[0][2], rows[1][2])
        np.testing.assert_allclose(rows[0][1], rows[1][1], rtol=1e-6)
        np.testing.assert_allclose(rows[0][0], rows[1][0], rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(gpu[3][b, n:], -1)  # unused slots as the host build leaves them
        np.testing.assert_array_equal(cpu[3][b, n:], -1)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed")
def test_tensorrt_registration(cuda):
    import tensorrt as trt

    from yolov3_trt.plugin import trt_plugin

    if not trt_plugin.supports_aot(trt.__version__):
        pytest.skip(f"TensorRT {trt.__version__} has no AOT plugins (needs 10.9+)")
    trt_plugin.register()
    trt_plugin.register()  # idempotent
    registry = trt.get_plugin_registry()
    for heads in trt_plugin.HEAD_COUNTS:
        assert registry.get_creator(trt_plugin.op_type(heads), trt_plugin.PLUGIN_VERSION,
                                    trt_plugin.PLUGIN_NAMESPACE) is not None
