"""Is TensorRT usable here? The TensorRT module, its version, and the one CUDA probe.

Contracts: :func:`probe_cuda_device` -> ``(CudaDevice, "")`` or ``(None, reason)``;
:func:`driver_version` -> the CUDA driver's ``1000 * major + 10 * minor`` or None;
:func:`parse_version` is the one TensorRT-version parser (``"10.13.0.35"`` -> ``(10, 13, 0, 35)``)
and :func:`supports_aot_plugin` the one rule for AOT plugins (TensorRT >= 10.9); build, runtime
and plugin all ask these. :func:`error_text` describes a cuda-python runtime error code.

TensorRT segfaults when it deserialises an engine (and can crash building one) on a machine
without a usable GPU, so nothing here touches TensorRT objects: the device is probed through
cuda-python's runtime API first, and every failure (cuda-python not installed, ``libcuda``
missing, a driver older than the runtime, no device) becomes a reason string, never an
exception or a crash. ``tensorrt`` and ``cuda-python`` are imported lazily, on first use.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from types import ModuleType

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class CudaDevice:
    """One CUDA device as the runtime API reports it."""

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int                 # bytes
    driver_version: int               # e.g. 12060 for CUDA 12.6

    @property
    def sm(self) -> str:
        """``"8.7"`` for compute capability (8, 7)."""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


def cuda_runtime() -> ModuleType:
    """cuda-python's runtime API module (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6).

    Raises ImportError when cuda-python is not installed.
    """
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime  # cuda-python < 12.6 layout
    return runtime


def error_text(runtime: ModuleType, err) -> str:
    """``cudaGetErrorString`` of ``err`` as text (the code itself when that fails too)."""
    try:
        text = runtime.cudaGetErrorString(err)[1]
        return text.decode() if isinstance(text, bytes) else str(text)
    except Exception:  # a failure to describe a failure must not hide it
        return str(err)


def probe_cuda_device(index: int = 0) -> tuple[CudaDevice | None, str]:
    """The CUDA device ``index`` and ``""``, or ``None`` and why there is none usable.

    Safe on any machine: without cuda-python, without a driver, or without a GPU it returns a
    reason (and logs it at debug level) instead of raising.
    """
    try:
        runtime = cuda_runtime()
    except ImportError as err:
        return None, f"cuda-python is not installed ({err}); pip install cuda-python"
    try:
        ok = runtime.cudaError_t.cudaSuccess
        err, count = runtime.cudaGetDeviceCount()
        if err != ok:
            return None, f"no usable CUDA device: {error_text(runtime, err)}"
        if count == 0:
            return None, "no CUDA device found"
        if not 0 <= index < count:
            return None, f"CUDA device {index} does not exist ({count} found)"
        err, props = runtime.cudaGetDeviceProperties(index)
        if err != ok:
            return None, f"CUDA device {index} cannot be queried: {error_text(runtime, err)}"
        _, driver = runtime.cudaDriverGetVersion()
    except Exception as err:  # libcuda missing or broken: cuda-python raises its own types
        return None, f"no usable CUDA driver ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    device = CudaDevice(index, name.rstrip("\x00").strip(), (int(props.major), int(props.minor)),
                        int(props.totalGlobalMem), int(driver or 0))
    return device, ""


def driver_version() -> int | None:
    """The CUDA driver's version (``cudaDriverGetVersion``), or None without cuda-python or a driver."""
    try:
        runtime = cuda_runtime()
        err, version = runtime.cudaDriverGetVersion()
    except Exception:  # no cuda-python, or no libcuda: nothing will load PTX here anyway
        return None
    return int(version) if err == runtime.cudaError_t.cudaSuccess and int(version) > 0 else None


def tensorrt_module() -> tuple[ModuleType | None, str]:
    """The ``tensorrt`` module and ``""``, or ``None`` and why it cannot be imported.

    Importing TensorRT is safe without a GPU (only deserialising is not).
    """
    try:
        import tensorrt
    except ImportError as err:
        return None, f"TensorRT is not installed ({err}); it comes with JetPack, or pip install tensorrt"
    except Exception as err:  # a broken install: missing libnvinfer, wrong CUDA
        return None, f"TensorRT cannot be loaded ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return tensorrt, ""


MIN_AOT_VERSION = (10, 9)  # tensorrt.plugin.aot_impl


def parse_version(text: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> (10, 13, 0, 35); non-numeric parts end the tuple (``"garbage"`` -> ())."""
    out = []
    for part in str(text).split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def tensorrt_version() -> str | None:
    """The installed TensorRT's version string, or None."""
    trt, _ = tensorrt_module()
    return None if trt is None else str(trt.__version__)


def supports_aot_plugin(version: str) -> bool:
    """Whether TensorRT ``version`` compiles the decode+NMS plugin ahead of time into the engine.

    ``tensorrt.plugin.aot_impl`` exists from 10.9; older releases get the end2end graph.
    """
    parsed = parse_version(version)
    return len(parsed) >= 2 and parsed[:2] >= MIN_AOT_VERSION


@functools.lru_cache(maxsize=None)
def availability(index: int = 0) -> tuple[bool, str]:
    """(True, "TensorRT 10.3.0.30 on Orin (sm 8.7)") or (False, why not), for tools and benchmarks.

    Cached: the answer does not change while a process runs.
    """
    trt, reason = tensorrt_module()
    if trt is None:
        return False, reason
    device, reason = probe_cuda_device(index)
    if device is None:
        return False, f"TensorRT {trt.__version__} is installed but {reason}"
    return True, f"TensorRT {trt.__version__} on {device.name} (sm {device.sm})"


def is_available(index: int = 0) -> bool:
    """Whether engines can be built and run here (TensorRT importable and a usable CUDA device)."""
    return availability(index)[0]
