"""What the quantizers share: reading the source ONNX, checking it, carrying its metadata over.

The source is an ONNX file from ``python -m yolov3_trt.export`` (one float32 input ``NCHW``,
``yolov3_trt.*`` metadata). A quantized file keeps that metadata, so ``Detector`` loads it like
the original, and adds three keys in the same ``yolov3_trt.`` namespace (``precision``,
``quantize_target``, ``calibration``) that older readers keep as ``ModelMetadata.extra``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import QuantizeError
from ..metadata import NMS_KEYS, PREFIX, ModelMetadata

QUANTIZE_KEYS = ("precision", "quantize_target", "calibration")  # what finish() adds, besides the source's
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis) need opset 13



@dataclass(frozen=True)
class SourceModel:
    """The facts about a source ONNX that quantization needs."""

    path: Path
    input_name: str
    input_shape: tuple[Any, ...]        # dims as in the graph: ints, or strings for dynamic axes
    size: tuple[int, int]               # (width, height) the model runs at
    metadata: ModelMetadata
    props: dict[str, str]               # every metadata_props entry, ours and others'
    opset: int


def _dims(value_info) -> tuple[Any, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def require_modelopt(path: str | os.PathLike) -> None:
    """QuantizeError naming ``path`` when NVIDIA ModelOpt (FP16, INT8 for TensorRT) is not installed."""
    import importlib.util

    if importlib.util.find_spec("modelopt") is None:
        raise QuantizeError(path, "FP16 and INT8 for TensorRT need NVIDIA ModelOpt: pip install -e .[quantize] "
                                  "(--int8 --target cpu needs only onnxruntime)")


def route_modelopt_logging() -> None:
    """Drop the console handler ``modelopt.onnx`` puts on its logger when imported.

    It prints every INFO message to the stdout of the moment (a CLI's JSON output, or a stream a
    test has since closed); the messages still propagate to :mod:`logging`, like ours.
    """
    import logging

    modelopt_logger = logging.getLogger("modelopt.onnx")
    for handler in list(modelopt_logger.handlers):
        if type(handler) is logging.StreamHandler:
            modelopt_logger.removeHandler(handler)


def load_source(path: str | os.PathLike, size: tuple[int, int] | None = None) -> SourceModel:
    """Read and check the source ONNX.

    Raises:
        QuantizeError: not a readable ONNX, no yolov3_trt metadata, not one float32 NCHW input, a
            graph whose fixed input size disagrees with its metadata, or ``size`` (width, height)
            given and different from the model's.
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise QuantizeError(path, "no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and others for non-ONNX bytes
        raise QuantizeError(path, f"not a readable ONNX file ({type(err).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    metadata = ModelMetadata.from_props(props, path)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise QuantizeError(path, f"expected one image input, the model has {len(inputs)}")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise QuantizeError(path, f"input {inputs[0].name!r} is not float32: quantize the FP32 export, "
                                  "not an already converted model")
    shape = _dims(inputs[0])
    if len(shape) != 4 or shape[1] != 3:
        raise QuantizeError(path, f"input {inputs[0].name!r} has shape {list(shape)}, expected [N, 3, H, W]")
    width, height = metadata.input_size
    graph_hw = shape[2:]
    if all(isinstance(d, int) for d in graph_hw) and tuple(graph_hw) != (height, width):
        raise QuantizeError(path, f"input {inputs[0].name!r} is {graph_hw[1]}x{graph_hw[0]} but the metadata "
                                  f"says {width}x{height}; re-export the model")
    if size is not None and tuple(size) != (width, height):
        raise QuantizeError(path, f"the model's input is {width}x{height}, not {size[0]}x{size[1]}: calibrate at the "
                                  "size it was exported at (or re-export it with --size)")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    for key in ("precision", "quantize_target"):
        if PREFIX + key in props and props[PREFIX + key] != "fp32":
            raise QuantizeError(path, f"is already a {props[PREFIX + key]} model: quantize the FP32 export")
    return SourceModel(path, inputs[0].name, shape, (width, height), metadata, props, opset)


def finish(model, source: SourceModel, tmp: Path, **ours: Any) -> None:
    """Put the source's metadata (plus ``ours``, JSON for non-strings) on ``model``, check it, save to ``tmp``."""
    import onnx

    props = dict(source.props)
    props.update({PREFIX + k: v if isinstance(v, str) else json.dumps(v) for k, v in ours.items()})
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))


def prepare(source: SourceModel, folder: str | os.PathLike) -> Path:
    """The graph the quantizers read, in ``folder``: ``source`` with -inf pads folded
    (:mod:`.graph_prep`) and, for an end2end or plugin graph, cut back to its raw heads
    (calibration runs the graph on ONNX Runtime, which cannot run the plugin node, and decode +
    NMS are not to be quantized); :func:`restore_tail` puts the tail back afterwards."""
    import onnx

    from ..export.tail import TAILS, strip_tail
    from .graph_prep import fold_inf_pads

    model = onnx.load(str(source.path))
    if source.metadata.flavour in TAILS:
        strip_tail(model, source.metadata)
    out = Path(folder) / "prepared.onnx"
    fold_inf_pads(model)
    onnx.save(model, str(out))
    return out


def restore_tail(model, source: SourceModel) -> None:
    """Append ``source``'s end2end or plugin tail (thresholds as baked) to the quantized raw ``model``."""
    from ..export.tail import TAILS, append_tail

    meta = source.metadata
    if meta.flavour in TAILS:
        append_tail(model, meta, meta.flavour, conf=meta.conf, iou=meta.iou, max_det=meta.max_det,
                    pre_nms_top_k=meta.pre_nms_top_k)


def raw_copy(source: SourceModel, out: str | os.PathLike) -> Path:
    """``source`` as a raw-heads file at ``out``: an end2end or plugin graph cut back to its heads
    (the graph :func:`prepare` quantizes, node for node) with ``raw`` metadata, so the Detector
    runs it on ONNX Runtime with host decode + NMS, the arithmetic of the tail it lost; a raw
    source is copied as it is. What the INT8 budget measures for a plugin graph, which ONNX
    Runtime cannot run."""
    import dataclasses

    import onnx

    from ..export.tail import TAILS, strip_tail

    model = onnx.load(str(source.path))
    meta = source.metadata
    if meta.flavour in TAILS:
        strip_tail(model, meta)
        meta = dataclasses.replace(meta, flavour="raw", conf=None, iou=None, max_det=None, pre_nms_top_k=None)
    ours = meta.to_props()
    props = {k: v for k, v in source.props.items() if k not in {PREFIX + n for n in NMS_KEYS}} | ours
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    out = Path(out)
    onnx.save(model, str(out))
    return out
