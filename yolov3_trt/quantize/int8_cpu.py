"""INT8 for the CPU: ONNX Runtime's static quantization, QDQ placed for ONNX Runtime's kernels.

uint8 activations (asymmetric) and int8 per-channel weights (symmetric) in QDQ format: ONNX
Runtime's graph optimizer turns each ``DQ -> op -> Q`` group into an integer kernel
(QLinearConv, QLinearLeakyRelu, QLinearAdd, QLinearConcat, ...), so tensors stay uint8 between
layers. ``CPU_OP_TYPES`` is what measured fastest (README, "Precision and calibration").

Methods, as ``quantize_static`` offers them (measured on the trained yolov3-tiny, README):
``percentile`` (99.999 % of values) was the most accurate; ``entropy`` is ONNX Runtime's, which
builds its histograms with 128 bins into 128 quantized bins, so the KL search has nothing to cut
and returns the max range (its files are byte-identical to ``max``). A TensorRT-style 2048-bin
entropy search was tried and clipped YOLO's activation outliers too hard (AP50 -3.6 points), so
it is not used.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from .reader import make_reader

logger = logging.getLogger(__name__)

# Every op of a Darknet YOLOv3 graph that ONNX Runtime has an integer kernel for, so the tensors
# stay uint8 from one Conv to the next (a float gap between two QLinearConvs costs a DQ + Q pair).
CPU_OP_TYPES = ("Conv", "LeakyRelu", "Add", "Concat", "MaxPool", "Resize")
METHODS = {"entropy": "Entropy", "max": "MinMax", "percentile": "Percentile"}


def quantize_cpu(src: str | os.PathLike, tmp: str | os.PathLike, input_name: str, images: np.ndarray,
                 method: str, *, op_types: tuple[str, ...] = CPU_OP_TYPES, reduce_range: bool = False,
                 per_channel: bool = True, nodes_to_exclude: list[str] | None = None) -> None:
    """Calibrate ``src`` on ``images`` ``(N, 3, H, W)`` with ``method`` and write QDQ INT8 to ``tmp``.

    ``reduce_range`` (7-bit weights) avoids the int16 saturation of ``vpmaddubsw`` in pre-VNNI
    AVX2 kernels at some accuracy cost; it was measured and is off (README).

    ``nodes_to_exclude``: node names ONNX Runtime leaves unquantized (float weights; a neighbour
    that is quantized may still hand them a dequantized input, which
    :func:`yolov3_trt.quantize.int8.read_float_inputs` undoes); None or empty: every node of
    ``op_types``, as before.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        model_input=str(src), model_output=str(tmp),
        calibration_data_reader=make_reader(input_name, images, batch=1),
        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        per_channel=per_channel, reduce_range=reduce_range, op_types_to_quantize=list(op_types),
        nodes_to_exclude=nodes_to_exclude or [],
        calibrate_method=getattr(CalibrationMethod, METHODS[method]),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True, "CalibPercentile": 99.999},
    )
