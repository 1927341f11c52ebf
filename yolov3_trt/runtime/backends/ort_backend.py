"""ONNX Runtime backend: CPU by default, CUDA when onnxruntime-gpu sees a GPU.

CPU settings (measured by ``benchmarks/ort_settings.py``, see the README): full graph
optimisation (fuses Conv + activation and folds constants), one intra-op thread per core,
sequential execution (the graph is a chain: inter-op parallelism only adds contention), the
memory arena and memory-pattern planning on, so repeated runs at one shape allocate nothing.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ...errors import FileError
from ...metadata import ModelMetadata
from .base import Backend

logger = logging.getLogger(__name__)


def session_options(threads: int | None = None, optimization: str = "all", arena: bool = True):
    """SessionOptions as the backend uses them (exposed for the settings benchmark)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or 0  # 0: one per physical core
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = arena
    options.enable_mem_pattern = arena
    options.log_severity_level = 3  # errors only: no per-session warnings on stderr
    return options


def providers(device: str = "auto") -> list[str]:
    """Execution providers: CUDA first when requested or available, CPU always as fallback."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        logger.warning("onnxruntime has no CUDA provider here (install onnxruntime-gpu); using the CPU")
    return ["CPUExecutionProvider"]


def read_metadata(session, path: str | os.PathLike) -> ModelMetadata:
    """Our metadata from an ONNX Runtime session (FileError when absent)."""
    return ModelMetadata.from_props(session.get_modelmeta().custom_metadata_map, path)


class OnnxRuntimeBackend(Backend):
    """Runs an exported ONNX file with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", threads: int | None = None,
                 optimization: str = "all", arena: bool = True):
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(os.fspath(path), session_options(threads, optimization, arena),
                                           providers=providers(device))
        except Exception as err:  # onnxruntime raises its own exception types per failure
            problem = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if "YoloDecodeNms" in problem:  # export --flavour plugin: a TensorRT plugin node
                raise FileError(path, "has the decode + NMS plugin node, which only TensorRT (>= 10.9) runs; "
                                      "export --flavour raw or end2end for ONNX Runtime") from None
            raise FileError(path, f"not a loadable ONNX model ({problem[:200]})") from None
        metadata = read_metadata(session, path)
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise FileError(path, f"expected one input, the model has {len(inputs)}")
        batch = inputs[0].shape[0]
        super().__init__(path, metadata, batch if isinstance(batch, int) else None)
        self.session = session
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in session.get_outputs()]

    @property
    def description(self) -> str:
        return f"onnxruntime ({self.session.get_providers()[0]})"

    def _infer(self, blob: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: blob})

    def close(self) -> None:
        self.session = None
        super().close()
