"""A Triton Inference Server model repository from an engine or an ONNX file.

    <output>/<name>/config.pbtxt      platform, tensors, dynamic batching, instance groups
    <output>/<name>/labels.txt        class names (Triton's label_filename)
    <output>/<name>/<version>/model.plan | model.onnx

Backends: an engine runs on Triton's TensorRT backend (``platform: "tensorrt_plan"``); an ONNX
on its ONNX Runtime backend (``platform: "onnxruntime_onnx"``) or, with ``backend="openvino"``,
on its OpenVINO backend (``backend: "openvino"``, ``default_model_filename: "model.onnx"``, CPU
instances only; ``openvino_precision="bf16"`` adds ``HINT_BF16``, ``threads`` sets
``INFERENCE_NUM_THREADS``; ``PERFORMANCE_HINT: LATENCY`` and one stream per instance, as the
Detector's openvino backend compiles). OpenVINO's backend reads only its own parameter keys, so
the ``yolov3_trt.*`` parameters ride along unchanged. The INT8 file placed for TensorRT goes to
the OpenVINO backend with its activation Q/DQ as uint8 (the same numbers; OpenVINO computes the
signed int8 form around a Concat wrongly), as the Detector's openvino backend reads it.

Tensors come from the model's metadata (not by opening the model): input ``images``
``[3, H, W]`` FP32; a raw graph's heads ``head<i>`` ``[A*(5+C), H/stride, W/stride]``; an
end2end or plugin graph's ``num_dets [1]`` INT32, ``boxes [K, 4]``, ``scores [K]`` FP32,
``classes [K]`` INT32 (``K = max_det``). Triton adds the batch axis (``max_batch_size``). The
``yolov3_trt.*`` metadata rides along as config ``parameters``, so a client can read class names,
anchors and thresholds from the server's model-config endpoint. :func:`validate_config` parses
the text with Triton's own ``model_config.proto`` (from ``tritonclient``).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..errors import FileError, YoloV3TrtError
from ..fileio import atomic_path, atomic_write_text
from ..metadata import ModelMetadata
from ..vocab import Backend, InferencePrecision

INPUT_NAME = "images"
SERVED_BY = (Backend.AUTO, Backend.ONNXRUNTIME, Backend.OPENVINO, Backend.TENSORRT)  # Triton backends we write
END2END_OUTPUTS = ("num_dets", "boxes", "scores", "classes")
logger = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class TritonOptions:
    """Serving settings. ``max_batch`` None: the engine's profile maximum, or 8 for an ONNX."""

    name: str
    max_batch: int | None = None
    instances: int = 1
    kind: str = "gpu"                               # gpu | cpu (cpu only for ONNX)
    backend: str = "auto"                           # auto | onnxruntime | openvino | tensorrt
    openvino_precision: str = "f32"                 # f32 | bf16 (the openvino backend's inference precision)
    threads: int | None = None                      # the openvino backend's INFERENCE_NUM_THREADS
    preferred_batch: tuple[int, ...] = ()
    max_queue_delay_us: int = 100
    version: int = 1


def tensor_specs(meta: ModelMetadata) -> tuple[list, list]:
    """(inputs, outputs) as (name, Triton data type, dims without the batch axis)."""
    width, height = meta.input_size
    inputs = [(INPUT_NAME, "TYPE_FP32", [3, height, width])]
    if meta.flavour == "raw":
        outputs = [(f"head{i}", "TYPE_FP32", [len(anchors) * (5 + meta.num_classes), height // sy, width // sx])
                   for i, (anchors, (sx, sy)) in enumerate(zip(meta.anchors, meta.strides))]
    else:
        k = int(meta.max_det or 0)
        outputs = [("num_dets", "TYPE_INT32", [1]), ("boxes", "TYPE_FP32", [k, 4]), ("scores", "TYPE_FP32", [k]),
                   ("classes", "TYPE_INT32", [k])]
    return inputs, outputs


def _tensor(name: str, dtype: str, dims: list[int], label: bool = False) -> str:
    extra = ' label_filename: "labels.txt"' if label else ""
    return f'  {{ name: "{name}" data_type: {dtype} dims: [ {", ".join(map(str, dims))} ]{extra} }}'


def openvino_parameters(options: TritonOptions) -> dict[str, str]:
    """The OpenVINO backend's own ``parameters`` for these options (its keys, upper case)."""
    params = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
    if options.openvino_precision == "bf16":
        params["HINT_BF16"] = "YES"
    if options.threads:
        params["INFERENCE_NUM_THREADS"] = str(int(options.threads))
    return params


def render_config(meta: ModelMetadata, platform: str, options: TritonOptions, max_batch: int,
                  parameters: dict[str, str]) -> str:
    """``config.pbtxt`` text for the model (Triton's protobuf text format). ``platform`` is
    ``tensorrt_plan``, ``onnxruntime_onnx`` or ``openvino`` (a backend, with its parameters)."""
    inputs, outputs = tensor_specs(meta)
    label_output = "classes" if meta.flavour != "raw" else None
    runs_on = ([f'backend: "{platform}"', 'default_model_filename: "model.onnx"'] if platform == "openvino"
               else [f'platform: "{platform}"'])
    if platform == "openvino":
        parameters = {**parameters, **openvino_parameters(options)}
    lines = [f'name: "{options.name}"', *runs_on, f"max_batch_size: {max_batch}",
             "input [", ",\n".join(_tensor(*t) for t in inputs), "]",
             "output [", ",\n".join(_tensor(*t, label=t[0] == label_output) for t in outputs), "]"]
    preferred = list(options.preferred_batch) or ([max_batch // 2, max_batch] if max_batch > 1 else [1])
    lines += ["dynamic_batching {", f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]",
              f"  max_queue_delay_microseconds: {options.max_queue_delay_us}", "}",
              "instance_group [", f"  {{ count: {options.instances} kind: KIND_{options.kind.upper()} }}", "]"]
    for key, value in sorted(parameters.items()):
        lines.append(f"parameters {{ key: {json.dumps(key)} value {{ string_value: {json.dumps(value)} }} }}")
    return "\n".join(lines) + "\n"


def validate_config(text: str, path: str | os.PathLike = "config.pbtxt"):
    """Parse ``text`` with Triton's ``ModelConfig`` protobuf; FileError naming ``path`` on any problem.

    Returns the parsed message. Needs ``tritonclient[grpc]`` (YoloV3TrtError when absent).
    """
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError as err:
        raise YoloV3TrtError(f"validating {os.fspath(path)} needs tritonclient: pip install \"tritonclient[grpc]\" "
                             f"({err})") from None
    try:
        config = text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as err:
        raise FileError(path, f"not a valid Triton model config ({err})") from None
    if config.max_batch_size < 1:
        raise FileError(path, "max_batch_size must be >= 1 for dynamic batching")
    if any(b > config.max_batch_size for b in config.dynamic_batching.preferred_batch_size):
        raise FileError(path, f"a preferred batch size exceeds max_batch_size {config.max_batch_size}")
    return config


def _engine_model(path: Path) -> tuple[ModelMetadata, dict[str, str], str, int]:
    """The engine's metadata from its sidecar, after checking the engine is the one the sidecar describes."""
    from yolov3_trt.tensorrt.sidecar import check_consistent, check_engine_hash, read_sidecar, sidecar_path

    from ..errors import EngineCompatibilityError

    info = read_sidecar(path)
    if not info.engine_sha256:
        raise EngineCompatibilityError(sidecar_path(path), "has no engine_sha256: the engine cannot be checked "
                                                           "against it; rebuild it with python -m yolov3_trt.build")
    check_engine_hash(path, info)
    meta = info.model_metadata(path)
    # its tensors and labels.txt come from that metadata: a mixed-up sidecar would serve another model's
    check_consistent(path, info, meta)
    return meta, dict(info.model), "tensorrt_plan", info.batch[2]


def _onnx_model(path: Path) -> tuple[ModelMetadata, dict[str, str], str, int | None]:
    import onnx

    from ..build.pipeline import read_onnx

    metadata, props, _, _ = read_onnx(path)
    if metadata.flavour == "plugin":
        raise FileError(path, "is a plugin graph, which only TensorRT runs: build an engine from it "
                              f"(python -m yolov3_trt.build --model {os.fspath(path)}) and serve that")
    model = onnx.load(os.fspath(path), load_external_data=False)
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value"):
        raise FileError(path, f"has a fixed batch of {batch.dim_value}: Triton's dynamic batching needs a dynamic "
                              "batch axis (export without --batch)")
    return metadata, props, "onnxruntime_onnx", None


def _onnx_platform(path: Path, options: TritonOptions, platform: str) -> str:
    """``onnxruntime_onnx``, or ``openvino`` for ``backend="openvino"`` (CPU instances only)."""
    if options.backend == "tensorrt":
        raise YoloV3TrtError(f"{path}: Triton's tensorrt backend serves engines: build one (python -m "
                             f"yolov3_trt.build --model {path}) and serve that")
    if options.backend != "openvino":
        if options.openvino_precision != "f32":
            raise YoloV3TrtError("the BF16 precision is the openvino backend's: add --backend openvino")
        return platform
    if options.kind != "cpu":
        raise YoloV3TrtError(f"{path}: Triton's openvino backend runs on CPU instances: add --kind cpu")
    return "openvino"


def _tensorrt_int8(props: dict[str, str]) -> bool:
    """Whether the ONNX's metadata says INT8 placed for TensorRT: OpenVINO computes its signed int8
    Q/DQ around a Concat wrongly, so Triton's openvino backend gets it with uint8 activation Q/DQ
    (the same numbers; ``openvino_backend.uint8_activations``)."""
    return (props.get("yolov3_trt.precision"), props.get("yolov3_trt.quantize_target")) == ("int8", "tensorrt")


def write_repository(model_path: str | os.PathLike, output: str | os.PathLike, options: TritonOptions) -> Path:
    """Write the model folder under ``output``; returns the ``config.pbtxt`` path.

    The config is validated with Triton's protobuf before anything is written when tritonclient
    is installed. An engine must match its sidecar (SHA-256, names, input size, flavour,
    anchors) before anything is written. Files are written atomically; an existing version
    folder is replaced.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileError(model_path, "no such model file")
    if not _NAME.match(options.name):
        raise YoloV3TrtError(f"model name {options.name!r}: use letters, digits, '_', '-', '.'")
    suffix = model_path.suffix.lower()
    if options.backend not in SERVED_BY:
        raise YoloV3TrtError(f"--backend {options.backend}: Triton serves an engine on tensorrt and an ONNX on "
                             "onnxruntime or openvino")
    if options.openvino_precision not in InferencePrecision.values():
        raise YoloV3TrtError(f"openvino precision {options.openvino_precision!r}: expected one of "
                             f"{InferencePrecision.describe()}")
    if suffix in (".engine", ".plan"):
        if options.backend not in ("auto", "tensorrt"):
            raise YoloV3TrtError(f"{model_path}: a TensorRT engine runs on Triton's tensorrt backend, not "
                                 f"{options.backend}")
        meta, props, platform, engine_max = _engine_model(model_path)
        if options.kind != "gpu":
            raise YoloV3TrtError(f"{model_path}: a TensorRT engine runs only on a GPU instance (--kind gpu)")
        max_batch = options.max_batch or engine_max
        if max_batch > engine_max:
            raise YoloV3TrtError(f"{model_path}: --max-batch {max_batch} exceeds the engine's profile maximum "
                                 f"{engine_max} (rebuild with --batch MIN:OPT:{max_batch})")
        file_name = "model.plan"
    elif suffix == ".onnx":
        meta, props, platform, _ = _onnx_model(model_path)
        platform = _onnx_platform(model_path, options, platform)
        max_batch, file_name = options.max_batch or 8, "model.onnx"
    else:
        raise FileError(model_path, f"unknown model type {suffix or '(no suffix)'!r} (expected .engine, .plan, .onnx)")
    text = render_config(meta, platform, options, max_batch, props)
    folder = Path(output) / options.name
    config_path = folder / "config.pbtxt"
    if any(b > max_batch for b in options.preferred_batch):  # also without tritonclient to catch it below
        raise FileError(config_path, f"a preferred batch size exceeds max_batch_size {max_batch}")
    if importlib.util.find_spec("tritonclient") is not None:
        validate_config(text, config_path)
    else:
        logger.warning("tritonclient is not installed: %s is written without checking it against Triton's "
                       "model-config protobuf (pip install \"tritonclient[grpc]\")", config_path)
    version = folder / str(options.version)
    try:
        version.mkdir(parents=True, exist_ok=True)
        with atomic_path(version / file_name) as tmp:
            if platform == "openvino" and _tensorrt_int8(props):  # as the Detector's openvino backend reads it
                from ..runtime.backends.openvino_backend import uint8_activations

                Path(tmp).write_bytes(uint8_activations(model_path)[0])
            else:
                shutil.copyfile(model_path, tmp)
        atomic_write_text(folder / "labels.txt", "".join(f"{n}\n" for n in meta.names))
        atomic_write_text(config_path, text)
    except OSError as err:  # an unwritable or full output folder: one line, not a traceback
        raise FileError(folder, f"cannot write the model repository ({err.strerror or err})") from None
    return config_path
