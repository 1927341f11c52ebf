"""``quantize_int8``: sample and preprocess calibration images, consult the cache, calibrate, save.

One entry point for both targets, so both INT8 files of a model come from the same images:
``target="tensorrt"`` (ModelOpt, :mod:`.int8_tensorrt`) or ``target="cpu"`` (ONNX Runtime,
:mod:`.int8_cpu`). Methods each tool offers: ``entropy`` (both; the default), ``max`` (both),
``percentile`` (ONNX Runtime only).
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

from ..calibration import DEFAULT_NUM_IMAGES, CalibrationCache, calibration_key, load_calibration_images, sample_images
from ..fileio import atomic_path
from ..vocab import CalibMethod, Target
from .model_io import QuantizeError, finish, load_source, prepare, require_modelopt, restore_tail

logger = logging.getLogger(__name__)

TARGETS = Target.values()
# The activation-range methods each quantizer offers (ModelOpt has no percentile for INT8).
METHODS = {Target.TENSORRT: (CalibMethod.ENTROPY.value, CalibMethod.MAX.value), Target.CPU: CalibMethod.values()}


def _settings(target: str) -> str:
    """The quantizer and version that produced an entry: part of the cache key."""
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "none"

    tool = f"nvidia-modelopt {v('nvidia-modelopt')}" if target == "tensorrt" else "onnxruntime"
    ort = v("onnxruntime") if v("onnxruntime") != "none" else v("onnxruntime-gpu")
    return f"yolov3_trt-int8-v1; {tool}; onnxruntime {ort}"


def check_request(target: str, method: str) -> None:
    if target not in TARGETS:
        raise QuantizeError(None, f"unknown target {target!r}: use one of {Target.describe()}")
    if method not in METHODS[target]:
        tool = "ModelOpt (TensorRT)" if target == "tensorrt" else "ONNX Runtime"
        raise QuantizeError(None, f"calibration method {method!r} is not offered by {tool} for INT8: "
                                          f"use one of {', '.join(METHODS[target])}")


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike,
                  calib: str | os.PathLike | Sequence[str | os.PathLike], *, target: str = "tensorrt",
                  method: str = "entropy", num_images: int = DEFAULT_NUM_IMAGES, seed: int = 0,
                  cache_dir: str | os.PathLike | None = None, size: tuple[int, int] | None = None,
                  progress: bool = True, nodes_to_exclude: Sequence[str] | None = None) -> Path:
    """Write ``src`` (an FP32 export) to ``dst`` as INT8 Q/DQ ONNX calibrated on images, atomically.

    Args:
        src: the FP32 ONNX from ``python -m yolov3_trt.export``.
        dst: the INT8 ONNX to write.
        calib: calibration images: a folder, an image list ``.txt``, a COCO ``.json``, an image,
            or a sequence of image files (see :func:`yolov3_trt.calibration.sample_images`).
        target: ``"tensorrt"`` (ModelOpt: symmetric, zero point 0, TensorRT placement, FP16
            elsewhere) or ``"cpu"`` (ONNX Runtime: uint8 activations, int8 per-channel weights).
        method: ``"entropy"``, ``"max"`` or (cpu only) ``"percentile"``.
        num_images: calibration images sampled from ``calib`` (seeded, stratified by class).
        seed: sampling seed.
        cache_dir: a folder of calibrated models; an identical request is copied from it.
        size: (width, height) the caller expects; QuantizeError when the model's differs.
        nodes_to_exclude: names of nodes of the (raw) graph to keep out of quantization: for
            ``tensorrt`` they stay in FP16 (ModelOpt's ``nodes_to_exclude``), for ``cpu`` in FP32
            (ONNX Runtime's); either way they read their inputs unquantized
            (:func:`read_float_inputs`). Recorded as ``excluded`` in the ``calibration`` metadata
            and part of the cache key. None or empty: the default placement.

    Returns:
        ``dst`` as a Path.

    Raises:
        CalibrationError: an empty, unreadable or too small calibration set, or non-images.
        QuantizeError: a source model that is not an FP32 yolov3_trt export, a size mismatch, an
            unknown target or a method the target's tool does not offer, or an excluded node name
            the graph does not have.
    """
    check_request(target, method)
    excluded = sorted(set(nodes_to_exclude or ()))
    source = load_source(src, size)
    if target == "tensorrt":
        require_modelopt(source.path)
    images = sample_images(calib, num_images, seed)
    dst = Path(dst)
    cache = CalibrationCache(cache_dir) if cache_dir is not None else None
    key = None
    settings = _settings(target)
    if cache is not None:
        settings += (f"; exclude {','.join(excluded)}" if excluded else "")
        key = calibration_key(source.path, images, method=method, size=source.size, target=target,
                              settings=settings)
        if cache.fetch(key, dst):
            return dst
    blob = load_calibration_images(images, source.size, source.metadata.resize, progress=progress)
    logger.info("calibrating %s for %s with %s on %d images at %dx%d", source.path.name, target, method,
                len(images), *source.size)
    import onnx

    with tempfile.TemporaryDirectory(prefix="yolov3_trt-int8-") as tmp_dir:
        raw = Path(tmp_dir) / "int8.onnx"
        prepared = prepare(source, tmp_dir)
        if excluded:
            known = {n.name for n in onnx.load(str(prepared), load_external_data=False).graph.node}
            unknown = [n for n in excluded if n not in known]
            if unknown:
                raise QuantizeError(source.path, f"no node named {', '.join(map(repr, unknown))} in the graph "
                                                 "to quantize: nodes_to_exclude takes node names of the raw graph")
        if target == "tensorrt":
            from .int8_tensorrt import quantize_tensorrt
            try:
                quantize_tensorrt(prepared, raw, source.input_name, blob, method, nodes_to_exclude=excluded)
            except QuantizeError as err:  # it names the temporary prepared copy: name the source instead
                raise QuantizeError(source.path, err.problem) from None
        else:
            from .int8_cpu import quantize_cpu
            quantize_cpu(prepared, raw, source.input_name, blob, method, nodes_to_exclude=excluded)
        model = onnx.load(str(raw))
        if excluded:
            read_float_inputs(model, excluded)
        restore_tail(model, source)
        calibration = {"method": method, "images": len(images), "seed": seed, "size": list(source.size)}
        if excluded:
            calibration["excluded"] = excluded
        with atomic_path(dst) as tmp:
            finish(model, source, tmp, precision="int8", quantize_target=target, calibration=calibration)
            if cache is not None and key is not None:
                try:
                    cache.store(key, tmp, {"source": str(source.path), "target": target, **calibration,
                                           "settings": settings, "images_used": [str(p) for p in images]})
                except OSError as err:  # an unwritable cache must not cost the calibrated model
                    logger.warning("calibration cache %s not written (%s); %s is", cache.folder,
                                   err.strerror or err, dst)
    logger.info("wrote INT8 (%s) model %s", target, dst)
    return dst


def read_float_inputs(model, names: Sequence[str]) -> int:
    """Feed each node of ``names`` the unquantized tensor wherever a ``QuantizeLinear ->
    DequantizeLinear`` pair stands before one of its inputs, in place; returns how many inputs
    were rewired.

    A quantizer told to leave a node alone still quantizes a tensor its other consumers (or its
    producer) want quantized, and the excluded node then reads the rounded copy. Reading the
    tensor before the pair keeps the node's inputs at the graph's high precision (the pair stays
    for the other consumers; a pair nobody reads any more is removed).
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    wanted = set(names)
    rewired = 0
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = producer.get(dq.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue  # a weight stored as int8: no float copy to read
            node.input[i] = q.input[0]
            rewired += 1
    if rewired:
        graph_outputs = {o.name for o in model.graph.output}
        while True:  # drop the Q/DQ nodes whose outputs nobody reads now
            read = {i for n in model.graph.node for i in n.input} | graph_outputs
            dead = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                    and not any(o in read for o in n.output)]
            if not dead:
                break
            for n in dead:
                model.graph.node.remove(n)
        logger.debug("%d inputs of excluded nodes read unquantized", rewired)
    return rewired
