"""OpenVINO backend: ONNX files on OpenVINO's CPU plugin.

It runs the same ONNX files as ONNX Runtime: FP32, FP16, and both INT8 flavours (ONNX Runtime's
QDQ, and the ModelOpt Q/DQ file placed for TensorRT, which OpenVINO turns into integer kernels
but computes measurably less accurately than its Q/DQ define: a warning says so on load).

``precision``: the CPU plugin's inference precision hint, ``"f32"`` (the default: results equal
ONNX Runtime's to float rounding) or ``"bf16"`` (about 2x faster where the CPU has AVX-512 BF16
or AMX; the log says when the CPU lacks it and f32 is used instead). ``threads``: the number of
inference threads (default: one per core). The model is compiled once, for dynamic batch when
the file's batch axis is dynamic; one infer request per backend, so calls on one backend must
not overlap (the Detector's lock serialises them, as for every backend).
"""
from __future__ import annotations

import logging
import os

import numpy as np

from ...errors import FileError, YoloV3TrtError
from ...metadata import PREFIX, ModelMetadata
from ...vocab import InferencePrecision
from .base import Backend

logger = logging.getLogger(__name__)

PRECISIONS = InferencePrecision.values()


def _core():
    try:
        import openvino as ov
    except ImportError:
        raise YoloV3TrtError('the openvino backend needs OpenVINO: pip install "yolov3_trt[openvino]"') from None
    return ov, ov.Core()


def cpu_supports_bf16(core=None) -> bool:
    """Whether OpenVINO's CPU plugin computes in BF16 on this CPU."""
    if core is None:
        _, core = _core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def compile_config(precision: str, threads: int | None) -> dict:
    """The CPU plugin's settings this backend compiles with (also benchmarks/fps.py's peer row):
    the inference precision hint, the latency hint and, when given, the thread count."""
    config: dict = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
                    "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def read_metadata(model, path: str | os.PathLike) -> ModelMetadata:
    """The ``yolov3_trt.*`` metadata OpenVINO's ONNX frontend keeps in the model's rt_info."""
    info = model.get_rt_info()
    framework = info["framework"] if "framework" in info else {}
    props = {key: str(value.astype(str) if hasattr(value, "astype") else value) for key, value in framework.items()
             if key.startswith(PREFIX)}
    return ModelMetadata.from_props(props, path)


class OpenVinoBackend(Backend):
    """Runs an exported ONNX file with OpenVINO on the CPU."""

    name = "openvino"

    def __init__(self, path: str | os.PathLike, *, device: str = "auto", threads: int | None = None,
                 precision: str = "f32"):
        if device not in ("auto", "cpu"):
            raise YoloV3TrtError(f"{os.fspath(path)}: the openvino backend runs on the CPU: device must be auto or "
                                 f"cpu, not {device!r}")
        if precision not in PRECISIONS:
            raise YoloV3TrtError(f"{os.fspath(path)}: precision must be one of {', '.join(PRECISIONS)}, "
                                 f"not {precision!r}")
        if threads is not None and threads < 1:
            raise YoloV3TrtError(f"{os.fspath(path)}: threads must be >= 1, got {threads}")
        ov, core = _core()
        if not os.path.isfile(path):
            raise FileError(path, "no such model file")
        try:
            model = core.read_model(os.fspath(path))
        except Exception as err:  # OpenVINO raises RuntimeError subclasses with long texts
            problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if "YoloDecodeNms" in str(err):
                raise FileError(path, "has the decode + NMS plugin node, which only TensorRT (>= 10.9) runs; "
                                      "export --flavour raw or end2end for OpenVINO") from None
            raise FileError(path, f"OpenVINO cannot read it ({problem[:200]})") from None
        metadata = read_metadata(model, path)
        if (metadata.extra.get("precision"), metadata.extra.get("quantize_target")) == ("int8", "tensorrt"):
            logger.warning("%s: OpenVINO runs this INT8 file placed for TensorRT less accurately than its Q/DQ "
                           "define (measured 3.7-3.9 AP50 below FP32 where ONNX Runtime gives 0.2-0.3; README "
                           "'CPU runtimes'): for the CPU use the --target cpu file", path)
        if len(model.inputs) != 1:
            raise FileError(path, f"expected one input, the model has {len(model.inputs)}")
        batch = model.inputs[0].get_partial_shape()[0]
        super().__init__(path, metadata, batch.get_length() if batch.is_static else None)
        if precision == "bf16" and not cpu_supports_bf16(core):
            logger.warning("%s: this CPU has no BF16 (OpenVINO: %s): running f32", path,
                           ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")))
            precision = "f32"
        self.precision = precision
        try:
            self._compiled = core.compile_model(model, "CPU", compile_config(precision, threads))
        except Exception as err:
            problem = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise FileError(path, f"OpenVINO cannot compile it ({problem[:200]})") from None
        self._request = self._compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in self._compiled.outputs]
        self.version = ov.__version__

    @property
    def description(self) -> str:
        return f"openvino {self.version.split('-')[0]} (CPU, {self.precision})"

    def _infer(self, blob: np.ndarray) -> list[np.ndarray]:
        results = self._request.infer({0: blob})
        return [np.array(results[output]) for output in self._compiled.outputs]

    def close(self) -> None:
        self._request = self._compiled = None
        super().close()
