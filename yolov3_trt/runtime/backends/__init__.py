"""Backend registry: which backends exist, which can load a file, which are installed here.

Backends are imported only when chosen, so a robot with only ONNX Runtime (or only TensorRT)
installed never imports the others.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

from ...errors import YoloV3TrtError
from .base import Backend

# name -> (module, class, the Python package it needs, file suffixes it loads)
REGISTRY: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "onnxruntime": ("yolov3_trt.runtime.backends.ort_backend", "OnnxRuntimeBackend", "onnxruntime", (".onnx",)),
    "torch": ("yolov3_trt.runtime.backends.torch_backend", "TorchBackend", "torch", (".pt", ".pth")),
    "tensorrt": ("yolov3_trt.runtime.backends.trt_backend", "TensorRTBackend", "tensorrt", (".engine", ".plan")),
}


def installed(name: str) -> bool:
    """Whether backend ``name``'s Python package can be imported here."""
    return importlib.util.find_spec(REGISTRY[name][2]) is not None


def backend_class(name: str) -> type[Backend]:
    module, cls, _, _ = REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def choose(path: str | os.PathLike, backend: str) -> str:
    """The backend to load ``path`` with: ``backend`` checked, or for ``auto`` the best installed.

    ``auto`` goes by the file type (an .onnx runs on ONNX Runtime, CUDA provider first when
    present; a checkpoint on torch, CUDA when present), since each format has one runtime that
    executes it natively.
    """
    suffix = Path(path).suffix.lower()
    fits = [name for name, (_, _, _, suffixes) in REGISTRY.items() if suffix in suffixes]
    if backend == "auto":
        if not fits:
            known = ", ".join(sorted({s for *_, suffixes in REGISTRY.values() for s in suffixes}))
            raise YoloV3TrtError(f"{os.fspath(path)}: unknown model type {suffix or '(no suffix)'!r} (expected {known})")
        usable = [name for name in fits if installed(name)]
        if not usable:
            raise YoloV3TrtError(f"{os.fspath(path)}: needs the {REGISTRY[fits[0]][2]} package, which is not installed")
        return usable[0]
    if backend not in REGISTRY:
        raise YoloV3TrtError(f"unknown backend {backend!r} (available: auto, {', '.join(REGISTRY)})")
    if backend not in fits:
        raise YoloV3TrtError(f"{os.fspath(path)}: the {backend} backend cannot load {suffix or 'this'} files")
    if not installed(backend):
        raise YoloV3TrtError(f"the {backend} backend needs the {REGISTRY[backend][2]} package, which is not installed")
    return backend
