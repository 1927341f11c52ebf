"""FP16 ONNX with FP32 inputs and outputs, through NVIDIA ModelOpt's AutoCast.

AutoCast converts the graph to FP16 but keeps in FP32 the nodes whose outputs or initializers
would not fit FP16 (``data_max``, ``init_max``) and numerically sensitive reductions; with
``keep_io_types`` the input stays float32 (the Detector feeds float32 blobs) and so do the
outputs (the numpy decode reads them). ``data_max`` needs reference activations: AutoCast runs
the FP32 model once on a given input (the calibration images when given, else random data of
the right shape) with ONNX Runtime on the CPU.

This is the file TensorRT 10.x/11 builds as a strongly typed FP16 engine. On ONNX Runtime's CPU
provider there are no FP16 Conv kernels: ONNX Runtime inserts casts and runs FP32 arithmetic on
FP16-rounded tensors, so the file runs (slower than FP32) and its accuracy can be measured.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from .model_io import finish, load_source, prepare, require_modelopt, restore_tail, route_modelopt_logging

logger = logging.getLogger(__name__)

DATA_MAX = 512.0       # AutoCast's default: node outputs above this magnitude stay FP32
INIT_MAX = 65504.0     # FP16's largest finite value: initializers beyond it stay FP32


def quantize_fp16(src: str | os.PathLike, dst: str | os.PathLike, *, reference: np.ndarray | None = None,
                  data_max: float = DATA_MAX) -> Path:
    """Write ``src`` (an FP32 export) to ``dst`` as mixed FP16/FP32 ONNX with FP32 I/O, atomically.

    ``reference``: optional ``(N, 3, H, W)`` float32 input for AutoCast's range check (random
    values in [0, 1] if None). Returns ``dst`` as a Path.
    """
    source = load_source(src)
    require_modelopt(source.path)
    from modelopt.onnx.autocast import convert_to_mixed_precision

    route_modelopt_logging()

    width, height = source.size
    if reference is None:
        reference = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="yolov3_trt-fp16-") as tmp_dir:
        data = Path(tmp_dir) / "reference.npz"
        np.savez(data, **{source.input_name: reference.astype(np.float32)})
        model = convert_to_mixed_precision(onnx_path=str(prepare(source, tmp_dir)), low_precision_type="fp16",
                                           keep_io_types=True, data_max=data_max, init_max=INIT_MAX,
                                           calibration_data=str(data))
    restore_tail(model, source)
    dst = Path(dst)
    with atomic_path(dst) as tmp:
        finish(model, source, tmp, precision="fp16", quantize_target="any")
    logger.info("wrote FP16 model %s", dst)
    return dst
