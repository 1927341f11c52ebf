"""OpenVINO backend: ONNX files on OpenVINO's CPU plugin.

It runs the same ONNX files as ONNX Runtime: FP32, FP16, and both INT8 flavours (ONNX Runtime's
QDQ, and the ModelOpt Q/DQ file placed for TensorRT). The TensorRT file's activations are signed
int8 (zero point 0), and OpenVINO's CPU plugin (measured on 2026.4) computes a Concat whose
signed-int8 Q/DQ feeds a Conv wrongly: the Concat's values reach the Conv rounded to whole numbers
in real units (the quantization scale is lost, so a 0.13 step becomes 1.0). The same numbers as
uint8 with zero point + 128 are computed right, so ``uint8_activations`` rewrites the file's
activation Q/DQ pairs that way in memory before OpenVINO reads it (ONNX Runtime gives identical
results for both; weights stay int8). That needs the ``onnx`` package; without it the file runs
as it is, with a warning (benchmarks/openvino_qdq_drift.py measures it).

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


def uint8_activations(path: str | os.PathLike) -> tuple[bytes, int]:
    """The ONNX file at ``path`` serialized with each activation Q/DQ pair whose zero point is int8
    (z) given a uint8 zero point z + 128 instead, and how many pairs changed. ONNX defines
    ``saturate(round(x / s) + z)`` and ``(q - z) * s``, so both are the same numbers; weight
    quantizers (a constant input) keep int8. Raises ImportError without the ``onnx`` package."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(os.fspath(path))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    constants = set(initializers) | {out for node in graph.node if node.op_type == "Constant" for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {out.name for out in graph.output}
    names = set(initializers)
    changed = 0
    for quantize in list(graph.node):
        if (quantize.op_type != "QuantizeLinear" or len(quantize.input) < 3 or quantize.input[0] in constants
                or quantize.output[0] in graph_outputs):
            continue
        zero = initializers.get(quantize.input[2])
        dequantizes = consumers.get(quantize.output[0], [])
        if zero is None or zero.data_type != onnx.TensorProto.INT8 or not dequantizes:
            continue
        if any(node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[2] not in initializers
               for node in dequantizes):
            continue
        value = numpy_helper.to_array(zero)
        if any(not np.array_equal(numpy_helper.to_array(initializers[node.input[2]]), value) for node in dequantizes):
            continue
        name = f"{quantize.input[2]}_uint8"
        while name in names:
            name += "_"
        names.add(name)
        graph.initializer.append(numpy_helper.from_array((value.astype(np.int16) + 128).astype(np.uint8), name))
        for node in (quantize, *dequantizes):
            node.input[2] = name
        for attribute in quantize.attribute:
            if attribute.name == "output_dtype":
                attribute.i = onnx.TensorProto.UINT8
        for info in graph.value_info:
            if info.name == quantize.output[0]:
                info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
        changed += 1
    return model.SerializeToString(), changed


def model_as_run(core, path: str | os.PathLike, model=None):
    """The OpenVINO model of the ONNX file ``path`` as this backend runs it (``model``: the file
    already read by ``core``): the INT8 file placed for TensorRT with its activation Q/DQ read as
    uint8 (module docstring), every other file as it is. Also what ``benchmarks/fps.py``'s
    network-only row and the INT8 budget's speed cost compile."""
    if model is None:
        model = core.read_model(os.fspath(path))
    metadata = read_metadata(model, path)
    if (metadata.extra.get("precision"), metadata.extra.get("quantize_target")) != ("int8", "tensorrt"):
        return model
    try:
        serialized, changed = uint8_activations(path)
        rewritten = core.read_model(serialized) if changed else model
    except ImportError:
        logger.warning("%s: OpenVINO runs this INT8 file placed for TensorRT less accurately than its Q/DQ "
                       "define (its signed int8 Q/DQ around Concat; measured 3.7-3.9 AP50 below FP32): "
                       "pip install onnx to let the backend correct it, or use the --target cpu file", path)
        return model
    except Exception as err:  # an odd file OpenVINO itself read: run it as it is, and say so
        logger.warning("%s: cannot read its int8 Q/DQ as uint8 (%s): OpenVINO runs it less accurately than "
                       "its Q/DQ define", path, (str(err).strip().splitlines() or [type(err).__name__])[0][:200])
        return model
    logger.debug("%s: %d activation Q/DQ pairs read as uint8 (zero point + 128) for OpenVINO", path, changed)
    return rewritten


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
        model = model_as_run(core, path, model)
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
