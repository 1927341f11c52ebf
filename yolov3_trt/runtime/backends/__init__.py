"""Backend registry: which backends exist, which can load a file, which are installed here.

Backends are imported only when chosen, so a robot with only ONNX Runtime (or only TensorRT)
installed never imports the others.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ...errors import DeviceError, FileError, YoloV3TrtError
from ...metadata import PREFIX
from ...onnx_props import read_metadata_props
from ...vocab import Flavour, Precision, Target
from .base import Backend

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendEntry:
    """One backend: where its class lives, the package it needs, the files it loads, and the
    keyword options its constructor takes beyond ``device`` and ``threads`` (the Detector's
    ``backend_options``; ``tests/runtime/test_backend_registry.py`` checks them against the
    constructors)."""

    module: str
    class_name: str
    package: str
    suffixes: tuple[str, ...]
    options: tuple[str, ...] = ()

    def load(self) -> type[Backend]:
        """The backend class (imports its module, so only when chosen)."""
        return getattr(importlib.import_module(self.module), self.class_name)


_HERE = "yolov3_trt.runtime.backends"
REGISTRY: dict[str, BackendEntry] = {
    "onnxruntime": BackendEntry(f"{_HERE}.ort_backend", "OnnxRuntimeBackend", "onnxruntime", (".onnx",),
                                ("optimization", "arena")),
    "torch": BackendEntry(f"{_HERE}.torch_backend", "TorchBackend", "torch", (".pt", ".pth"), ("size",)),
    "tensorrt": BackendEntry(f"{_HERE}.trt_backend", "TensorRTBackend", "tensorrt", (".engine", ".plan"),
                             ("stream", "cuda_graph", "verify_hash")),
    "openvino": BackendEntry(f"{_HERE}.openvino_backend", "OpenVinoBackend", "openvino", (".onnx",),
                             ("precision",)),
}

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")



def installed(name: str) -> bool:
    """Whether backend ``name``'s Python package can be imported here."""
    return importlib.util.find_spec(REGISTRY[name].package) is not None


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name`` (a key of :data:`REGISTRY`)."""
    return REGISTRY[name].load()


def check_options(name: str, options: dict) -> None:
    """YoloV3TrtError naming the ``options`` that backend ``name``'s constructor does not take."""
    unknown = sorted(set(options) - set(REGISTRY[name].options))
    if unknown:
        takes = ", ".join(REGISTRY[name].options) or "none"
        raise YoloV3TrtError(f"backend_options {', '.join(map(str, unknown))} not understood by the {name} backend "
                             f"(it takes: {takes})")


# The CPU runtime for ``auto``, per kind of raw-graph .onnx (its (precision, quantize_target)
# metadata): the fastest one whose accuracy equals ONNX Runtime's on the same file. Measured with
# ``python benchmarks/fps.py`` (yolov3-416, batch 1, 2 threads, the Detector end to end) and
# ``python benchmarks/quantize_accuracy.py`` (AP50 on the shapes model), README "CPU runtimes".
# Left out on purpose: end2end graphs (their NMS is the runtime's own).
CPU_FASTEST: dict[tuple[str, str], str] = {
    (Precision.FP32.value, ""): "openvino",                    # 149 ms against 173 (f32: the same numbers)
    (Precision.FP16.value, "any"): "openvino",                 # 144 ms against 250 (computed in f32)
    (Precision.INT8.value, Target.CPU.value): "openvino",      # 52.5 ms against 60.6, AP50 83.58 against 83.55
    # 47.2 ms against 382 (ONNX Runtime runs it as fake quantization), AP50 83.57 against 83.33: with its
    # activation Q/DQ read as uint8 (openvino_backend.uint8_activations), which needs onnx
    (Precision.INT8.value, Target.TENSORRT.value): "openvino",
}
# Kinds whose OpenVINO accuracy needs the onnx package (the uint8 rewrite); without it auto keeps ONNX Runtime.
NEEDS_ONNX = {(Precision.INT8.value, Target.TENSORRT.value)}


def _file_kind(path: Path) -> tuple[str, str]:
    """(precision, quantize_target) of an exported raw-graph .onnx, from its metadata ("fp32", ""
    when absent); ("", "") for a tailed graph or a file that is not ONNX (which the chosen backend
    then refuses in its own words)."""
    try:
        props = read_metadata_props(path)
    except FileError:
        return "", ""
    if props.get(PREFIX + "flavour", Flavour.RAW.value) != Flavour.RAW.value:
        return "", ""
    return props.get(PREFIX + "precision", Precision.FP32.value), props.get(PREFIX + "quantize_target", "")


def _auto_onnx(path: Path, usable: list[str], device: str, options: Mapping[str, Any]) -> str:
    """``auto`` for an .onnx: ONNX Runtime on a GPU (its CUDA provider) or whenever it is the only
    one that fits; on the CPU the runtime :data:`CPU_FASTEST` names for this kind of file."""
    fitting = [name for name in usable if set(options) <= set(REGISTRY[name].options)]
    if not fitting:
        return usable[0]  # check_options then names what the backend does not take
    ort = "onnxruntime" in fitting
    if device.startswith("cuda") or (device == "auto" and ort and _ort_has_cuda()):
        return "onnxruntime" if ort else fitting[0]
    kind = _file_kind(path)
    fastest = CPU_FASTEST.get(kind)
    if fastest == "openvino" and kind in NEEDS_ONNX and importlib.util.find_spec("onnx") is None:
        fastest = None  # OpenVINO would run it as read, less accurately than its Q/DQ define
    if fastest in fitting:
        logger.info("backend auto: %s runs %s (%s %s: the fastest CPU runtime measured for it; backend="
                    "'onnxruntime' to choose otherwise)", fastest, path.name, kind[0].upper(), kind[1])
        return fastest
    return "onnxruntime" if ort else fitting[0]


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def choose(path: str | os.PathLike, backend: str, device: str = "auto",
           options: Mapping[str, Any] | None = None) -> str:
    """The backend to load ``path`` with: ``backend`` checked, or for ``auto`` the best installed.

    ``auto`` goes by the file type: a checkpoint runs on torch, an engine on TensorRT; an .onnx on
    ONNX Runtime when a GPU is asked for or its CUDA provider is present, else on the CPU runtime
    measured fastest for that kind of file (:data:`CPU_FASTEST`: OpenVINO for the INT8 file placed
    for TensorRT, when installed), and the log says which. ``options`` (the Detector's
    ``backend_options``) keep ``auto`` to the backends that take them.
    """
    suffix = Path(path).suffix.lower()
    fits = [name for name, entry in REGISTRY.items() if suffix in entry.suffixes]
    if backend == "auto":
        if not fits:
            known = ", ".join(sorted({s for entry in REGISTRY.values() for s in entry.suffixes}))
            raise YoloV3TrtError(f"{os.fspath(path)}: unknown model type {suffix or '(no suffix)'!r} "
                                 f"(expected {known})")
        usable = [name for name in fits if installed(name)]
        if not usable:
            raise YoloV3TrtError(f"{os.fspath(path)}: needs the {REGISTRY[fits[0]].package} package, "
                                 "which is not installed")
        if suffix == ".onnx":
            return _auto_onnx(Path(path), usable, device if isinstance(device, str) else "auto", options or {})
        return usable[0]
    if backend not in REGISTRY:
        raise YoloV3TrtError(f"unknown backend {backend!r} (available: auto, {', '.join(REGISTRY)})")
    if backend not in fits:
        raise YoloV3TrtError(f"{os.fspath(path)}: the {backend} backend cannot load {suffix or 'this'} files")
    if not installed(backend):
        raise YoloV3TrtError(f"the {backend} backend needs the {REGISTRY[backend].package} package, "
                             "which is not installed")
    return backend


def check_device(backend: str, device: str) -> None:
    """DeviceError unless ``backend`` can run on ``device`` here.

    ``device`` is ``auto`` (a GPU when there is one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``.
    An explicit ``cuda`` never falls back to the CPU: a robot that asked for the GPU and got the
    CPU would run 20-100x slower without noticing, so it is refused here with the reason.
    The tensorrt backend checks its device itself (it probes the GPU with cuda-python).
    """
    if backend == "tensorrt":  # its own check: auto, cuda or cuda:N, probed with cuda-python
        return
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise DeviceError(f"device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not device.startswith("cuda"):
        return
    if backend == "openvino":
        raise DeviceError(f"device {device!r}: the openvino backend runs on the CPU; use device='cpu' or 'auto'")
    if backend == "onnxruntime":
        import onnxruntime as ort

        if device != "cuda":
            raise DeviceError(f"device {device!r}: the onnxruntime backend takes 'cuda' (the first GPU); "
                              "choose another GPU with CUDA_VISIBLE_DEVICES")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(f"device 'cuda': onnxruntime {ort.__version__} here has no CUDA provider "
                              "(pip install onnxruntime-gpu in place of onnxruntime), or use device='cpu' or 'auto'")
    elif backend == "torch":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise DeviceError(f"device {device!r}: torch {torch.__version__} ({built}) sees no CUDA GPU here; "
                              "use device='cpu' or 'auto'")
        index = int(device[5:]) if ":" in device else 0
        if index >= count:
            raise DeviceError(f"device {device!r}: torch sees {count} CUDA GPU{'s' if count > 1 else ''} "
                              f"(cuda:0..cuda:{count - 1})")


def check_loaded_device(loaded: Backend, device: str) -> None:
    """DeviceError when ``device`` asked for CUDA and ``loaded`` still ended up on the CPU.

    ONNX Runtime lists its CUDA provider as available in onnxruntime-gpu even when the provider
    cannot load (no driver, wrong CUDA): the session then falls back to the CPU with only a log line.
    """
    asked_gpu = isinstance(device, str) and device.startswith("cuda")
    if asked_gpu and loaded.name != "tensorrt" and "cuda" not in loaded.description.lower():
        raise DeviceError(f"device {device!r}: the {loaded.name} backend could not use the GPU and fell back to "
                          f"{loaded.description} (is the NVIDIA driver installed and a GPU visible?); "
                          "use device='cpu' or 'auto'")
