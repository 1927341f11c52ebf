"""The decode + NMS kernel launched from its PTX with cuda-python's driver API, for the GPU tests
(tests/gpu/test_plugin_gpu.py) and the device check (device_check.py, device_sections.py).

Nothing here imports pytest or the tests' conftest, so the device check (a plain script) uses it
too. What is here: the driver and its device (:func:`open_driver`, :func:`compute_capability`),
the PTX compiler the driver accepts (:func:`compile_kernel`), the kernel loaded from its PTX
(:class:`DeviceKernel`: one launch, or per-launch GPU times), :func:`summary_us` of those times
and :func:`run_kernel`. The heads it runs on and the comparison of its outputs are in
gpu_helpers.py beside this file.
"""
from __future__ import annotations

import ctypes
import statistics
from typing import Sequence

import numpy as np


class KernelUnavailable(Exception):
    """The kernel cannot run here (no driver or GPU, no compiler the driver accepts): the reason."""


def _ok(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA driver call failed: {err}")
    return rest[0] if len(rest) == 1 else rest


def open_driver(index: int = 0):
    """(driver module, device, primary context) made current; KernelUnavailable saying why not.
    Release with ``driver.cuDevicePrimaryCtxRelease(device)``."""
    try:
        from cuda.bindings import driver
    except ImportError as err:
        raise KernelUnavailable(f"cuda-python is not installed ({err})") from None
    try:
        (err,) = driver.cuInit(0)
    except Exception as exc:  # cuda-python raises when libcuda itself is missing
        raise KernelUnavailable(f"no CUDA driver here ({type(exc).__name__})") from None
    if int(err) != 0:
        raise KernelUnavailable(f"no CUDA GPU here ({err})")
    count = _ok(driver.cuDeviceGetCount())
    if index >= int(count):
        raise KernelUnavailable(f"CUDA device {index} does not exist ({count} found)")
    device = _ok(driver.cuDeviceGet(index))
    context = _ok(driver.cuDevicePrimaryCtxRetain(device))
    _ok(driver.cuCtxSetCurrent(context))
    return driver, device, context


def device_arch(driver, device) -> str:
    """``compute_90`` for an sm 9.0 device."""
    major, minor = compute_capability(driver, device)
    return f"compute_{major}{minor}"


def compute_capability(driver, device) -> tuple[int, int]:
    attr = driver.CUdevice_attribute
    return (int(_ok(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device))),
            int(_ok(driver.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device))))


def _driver_cuda() -> tuple[int, int] | None:
    from yolov3_trt.plugin import ptx

    version = ptx.driver_version()
    return None if version is None else (version // 1000, (version % 1000) // 10)


def compile_kernel(config, *, fp16: bool, arch: str) -> tuple[bytes, str]:
    """(PTX the driver here can load, which compiler wrote it).

    ``compile_ptx``'s own choice first (NVRTC when cuda-python has it). When that fails because
    NVRTC (or nvcc) is newer than the driver (``check_driver_compatible``), nvcc is tried if it
    is on PATH and no newer than the driver; when no compiler fits, KernelUnavailable says why.
    A compile error from a compiler the driver accepts is a real failure and is raised as is.
    Works whether or not ``compile_ptx`` itself falls back to nvcc.
    """
    from yolov3_trt.plugin import ptx
    from yolov3_trt.plugin.sources import PluginError

    driver_cuda = _driver_cuda()

    def fits(version) -> bool:  # PTX from this compiler loads here (no driver: nothing to check)
        return version is not None and (driver_cuda is None or tuple(version) <= driver_cuda)

    def name(version) -> str:
        return "none" if version is None else f"{version[0]}.{version[1]}"

    try:
        code = ptx.compile_ptx(config, fp16=fp16, arch=arch)
    except PluginError as first:
        nvrtc, nvcc = ptx.nvrtc_version(), ptx.nvcc_version()
        if driver_cuda is None or fits(nvrtc):
            raise  # no driver check was made, or NVRTC suits the driver: a real compile error
        if not fits(nvcc):
            raise KernelUnavailable(
                f"no compiler writes PTX this driver (CUDA {name(driver_cuda)}) loads: NVRTC {name(nvrtc)}, "
                f"nvcc {name(nvcc)} ({str(first).splitlines()[0]})") from None
        return ptx.compile_ptx(config, fp16=fp16, arch=arch, compiler="nvcc"), f"nvcc {name(nvcc)}"
    nvrtc = ptx.nvrtc_version()
    # compile_ptx takes NVRTC when present; a compile_ptx that falls back by itself took nvcc
    return code, f"nvrtc {name(nvrtc)}" if fits(nvrtc) else f"nvcc {name(ptx.nvcc_version())}"


class DeviceKernel:
    """The kernel for one :class:`~yolov3_trt.plugin.params.PluginConfig` and input dtype, loaded
    from its PTX; :meth:`run` gives its four outputs, :meth:`time` per-launch times."""

    def __init__(self, driver, device, config, *, fp16: bool):
        from yolov3_trt.plugin.sources import KERNEL_NAME

        self.driver, self.config, self.fp16 = driver, config, fp16
        self.ptx, self.compiler = compile_kernel(config, fp16=fp16, arch=device_arch(driver, device))
        self.module = _ok(driver.cuModuleLoadData(self.ptx + b"\0"))
        self.function = _ok(driver.cuModuleGetFunction(self.module, KERNEL_NAME.encode()))

    def close(self) -> None:
        if self.module is not None:
            self.driver.cuModuleUnload(self.module)
            self.module = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_inputs(self, outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        dtype = np.float16 if self.fp16 else np.float32
        arrays = [np.ascontiguousarray(o) for o in outputs]
        if any(a.dtype != dtype for a in arrays):
            raise ValueError(f"the kernel was compiled for {np.dtype(dtype).name} heads")
        return arrays

    def _launch_args(self, arrays, buffers):
        from yolov3_trt.plugin.params import launch_dims

        batch = arrays[0].shape[0]
        values = (*buffers[:len(arrays)], batch, *buffers[len(arrays):])
        types = (*[None] * len(arrays), ctypes.c_int, *[None] * 4)
        grid, block = launch_dims(batch)
        return grid, block, (values, types)

    def _with_buffers(self, outputs, body):
        driver, k = self.driver, self.config.max_det
        arrays = self._check_inputs(outputs)
        batch = arrays[0].shape[0]
        results = [np.zeros((batch, 1), np.int32), np.zeros((batch, k, 4), np.float32),
                   np.zeros((batch, k), np.float32), np.zeros((batch, k), np.int32)]
        buffers = []
        try:
            for a in arrays + results:
                buffers.append(_ok(driver.cuMemAlloc(max(a.nbytes, 1))))
            for buf, a in zip(buffers, arrays):
                _ok(driver.cuMemcpyHtoD(buf, a.ctypes.data, a.nbytes))
            value = body(arrays, buffers)
            _ok(driver.cuCtxSynchronize())
            for buf, r in zip(buffers[len(arrays):], results):
                _ok(driver.cuMemcpyDtoH(r.ctypes.data, buf, r.nbytes))
        finally:
            for buf in buffers:
                driver.cuMemFree(buf)
        return results, value

    def run(self, outputs: Sequence[np.ndarray]):
        """num_dets, boxes, scores, classes for the head tensors ``outputs`` (one launch)."""
        def body(arrays, buffers):
            grid, block, params = self._launch_args(arrays, buffers)
            _ok(self.driver.cuLaunchKernel(self.function, *grid, *block, 0, 0, params, 0))

        return self._with_buffers(outputs, body)[0]

    def time(self, outputs: Sequence[np.ndarray], *, warmup: int = 20, launches: int = 200) -> list[float]:
        """Each of ``launches`` back-to-back launches' GPU time in microseconds (CUDA events around
        each one), after ``warmup`` untimed launches."""
        driver = self.driver

        def body(arrays, buffers):
            grid, block, params = self._launch_args(arrays, buffers)
            for _ in range(warmup):
                _ok(driver.cuLaunchKernel(self.function, *grid, *block, 0, 0, params, 0))
            events = [(_ok(driver.cuEventCreate(0)), _ok(driver.cuEventCreate(0))) for _ in range(launches)]
            try:
                for start, stop in events:
                    _ok(driver.cuEventRecord(start, 0))
                    _ok(driver.cuLaunchKernel(self.function, *grid, *block, 0, 0, params, 0))
                    _ok(driver.cuEventRecord(stop, 0))
                _ok(driver.cuEventSynchronize(events[-1][1]))
                return [float(_ok(driver.cuEventElapsedTime(start, stop))) * 1e3 for start, stop in events]
            finally:
                for pair in events:
                    for event in pair:
                        driver.cuEventDestroy(event)

        return self._with_buffers(outputs, body)[1]


def summary_us(times: Sequence[float]) -> dict[str, float]:
    """Median, 10th and 90th percentile and minimum of per-launch times (microseconds)."""
    ordered = sorted(times)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"median_us": round(statistics.median(ordered), 2), "p10_us": round(pick(0.1), 2),
            "p90_us": round(pick(0.9), 2), "min_us": round(ordered[0], 2), "launches": len(ordered)}


def run_kernel(driver, device, outputs, config, repeats: int = 20):
    """Launch the PTX on ``outputs``: (the four outputs, the median kernel time in ms over ``repeats``)."""
    fp16 = outputs[0].dtype == np.float16
    with DeviceKernel(driver, device, config, fp16=fp16) as kernel:
        results = kernel.run(outputs)
        times = kernel.time(outputs, warmup=1, launches=repeats)
    return results, statistics.median(times) / 1e3
