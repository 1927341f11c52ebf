"""The build pipeline: [export] -> [quantize] -> TensorRT engine + sidecar.

Every step that needs neither TensorRT nor a GPU (export, FP16 conversion, INT8 calibration)
runs anywhere; :func:`build_engine` needs both, and :func:`require_tensorrt` says in one line
why it cannot run and which ONNX is ready to build on the target device.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Mapping

from ..errors import FileError, TensorRTUnavailableError, YoloV3TrtError
from ..fileio import atomic_write_bytes, file_sha256
from ..metadata import PREFIX, ModelMetadata
from yolov3_trt.tensorrt.device import CudaDevice, probe_cuda_device, tensorrt_module
from yolov3_trt.tensorrt.sidecar import EngineInfo, write_sidecar
from .steps import (BuildOptions, build_serialized_engine, create_config, load_timing_cache, make_logger,
                    network_from_onnx, save_engine, timing_cache_bytes)

logger = logging.getLogger(__name__)



def require_tensorrt(onnx_path: str | os.PathLike, build_flags: str = "", device_index: int = 0):
    """(tensorrt module, CudaDevice), or TensorRTUnavailableError naming the ONNX ready to build."""
    trt, reason = tensorrt_module()
    device = None
    if trt is not None:
        device, reason = probe_cuda_device(device_index)
    if trt is None or device is None:
        flags = f" {build_flags}" if build_flags else ""
        raise TensorRTUnavailableError(f"{reason}: {os.fspath(onnx_path)} is ready to build on the target device "
                                       f"with python -m yolov3_trt.build --model {os.fspath(onnx_path)}{flags}")
    return trt, device


def read_onnx(path: str | os.PathLike) -> tuple[ModelMetadata, dict[str, str], str, bool]:
    """(metadata, the raw ``yolov3_trt.*`` props, precision, uses a plugin node) of an ONNX file.

    Precision is read from the graph, not from a flag: Q/DQ nodes mean int8, FP16 initializers
    fp16, otherwise fp32. The weights stay on disk (external data is not loaded).
    """
    import onnx

    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and friends
        raise FileError(path, f"not an ONNX file ({type(err).__name__})") from None
    props = {p.key: p.value for p in model.metadata_props}
    ours = {k: v for k, v in props.items() if k.startswith(PREFIX)}
    ops = {node.op_type for node in model.graph.node}
    metadata = ModelMetadata.from_props(ours, path)
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        precision = "int8"
    elif any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        precision = "fp16"
    else:
        precision = "fp32"
    uses_plugin = ours.get(PREFIX + "flavour") == "plugin" or bool(_plugin_ops() & ops)
    return metadata, ours, precision, uses_plugin


def _plugin_ops() -> set[str]:
    """The plugin nodes' op types (one per head count)."""
    from ..plugin import trt_plugin

    return {trt_plugin.op_type(heads) for heads in trt_plugin.HEAD_COUNTS}


def default_timing_cache(tensorrt_version: str, device: CudaDevice) -> Path:
    """Per TensorRT version and GPU model, under ``$XDG_CACHE_HOME/yolov3_trt`` (~/.cache)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "yolov3_trt"
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", device.name).strip("-").lower()
    return root / f"timing-trt{tensorrt_version}-{gpu}-sm{device.sm}.cache"


def build_engine(onnx_path: str | os.PathLike, output: str | os.PathLike, options: BuildOptions, *,
                 device: CudaDevice | None = None, timing_cache: str | os.PathLike | None = None,
                 verbose: bool = False) -> EngineInfo:
    """Parse ``onnx_path``, build, write ``output`` and its sidecar; returns the sidecar's content.

    Needs TensorRT and a GPU (TensorRTUnavailableError otherwise). The timing cache file is read
    before and rewritten after the build, so rebuilding similar networks is much faster.
    """
    if device is None:
        _, device = require_tensorrt(onnx_path)
    import tensorrt as trt  # importable: require_tensorrt checked it

    if device.index:
        from yolov3_trt.tensorrt.device import cuda_runtime

        cuda_runtime().cudaSetDevice(device.index)  # the builder works on the current device
    metadata, props, precision, uses_plugin = read_onnx(onnx_path)
    plugin: Mapping[str, str] = {}
    if uses_plugin:
        from ..plugin import trt_plugin  # registers the decode+NMS QDP before the parser meets its node

        trt_plugin.register()
        plugin = {"namespace": str(trt_plugin.PLUGIN_NAMESPACE), "name": trt_plugin.op_type(len(metadata.anchors)),
                  "version": str(trt_plugin.PLUGIN_VERSION)}
    if options.dla_core is not None and precision == "fp32":
        logger.warning("%s is FP32: the DLA computes in FP16/INT8 only (tensor types decide, strongly typed), so "
                       "the whole network falls back to the GPU; build with --fp16 or --int8 for the DLA", onnx_path)
    trt_logger = make_logger(verbose)
    trt.init_libnvinfer_plugins(trt_logger, "")
    builder, network, _parser = network_from_onnx(onnx_path, trt_logger, dla=options.dla_core is not None)  # parser owns weights: keep it
    cache_path = Path(timing_cache) if timing_cache else default_timing_cache(trt.__version__, device)
    config = create_config(builder, network, options, load_timing_cache(cache_path))
    logger.info("building %s (%s, %s graph, batch %d:%d:%d) with TensorRT %s on %s; this takes minutes",
                onnx_path, precision, props.get(PREFIX + "flavour", "raw"), *options.batch, trt.__version__,
                device.name)
    if uses_plugin:  # aot_impl runs during the build: PTX for the oldest GPU the engine may meet
        with trt_plugin.ptx_target(options.hardware_compatibility):
            plan = build_serialized_engine(builder, network, config)
    else:
        plan = build_serialized_engine(builder, network, config)
    try:
        atomic_write_bytes(cache_path, timing_cache_bytes(config))
    except OSError as err:  # a read-only cache folder costs the next build time, not this engine
        logger.warning("timing cache %s not saved (%s)", cache_path, err)
    try:
        save_engine(plan, output)
    except OSError as err:  # one line, not a traceback after minutes of building
        raise FileError(output, f"cannot write the engine ({err.strerror or err})") from None
    info = EngineInfo(
        tensorrt_version=str(trt.__version__), gpu_name=device.name, compute_capability=device.compute_capability,
        precision=precision, input_size=metadata.input_size, batch=options.batch,
        flavour=props.get(PREFIX + "flavour", "raw"), names=metadata.names, anchors=metadata.anchors,
        plugin=plugin, engine_sha256=file_sha256(output), onnx_sha256=file_sha256(onnx_path),
        onnx_file=os.fspath(onnx_path), hardware_compatibility=options.hardware_compatibility,
        version_compatible=options.version_compatible, dla_core=options.dla_core, model=props)
    write_sidecar(output, info)
    return info
