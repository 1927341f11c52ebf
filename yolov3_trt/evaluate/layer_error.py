"""Where precision is lost: each layer's output in a converted model against the FP32 model.

Both graphs come from one export, and the quantizers keep tensor names (they insert Q/DQ and
casts around nodes), so the output of every Conv of the FP32 graph can be found by name in the
FP16/INT8 graph. Both are run on the same preprocessed images with those tensors exposed as
extra outputs (ONNX Runtime, CPU); the error of layer ``i`` is

    relative RMS error = ||y - y_fp32|| / ||y_fp32||      (over all images, all elements)

and SQNR = -20 log10(relative error) dB. The error accumulates through the network: a jump from
one layer to the next shows where precision is lost. Layers are labelled with the Darknet layer
index taken from the exporter's node names (``/layers.12/conv/Conv`` is layer 12).
"""
from __future__ import annotations

import math
import os
import re
from typing import Any

import numpy as np

from ..errors import FileError

_LAYER = re.compile(r"layers\.(\d+)")


def _conv_outputs(model) -> list[tuple[str, str]]:
    """(tensor name, node name) of every Conv output, in graph order."""
    return [(n.output[0], n.name) for n in model.graph.node if n.op_type == "Conv"]


def _session_with_outputs(path: str | os.PathLike, names: list[str]):
    """An ONNX Runtime CPU session of ``path`` whose outputs are ``names`` (those it has)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    produced = {o for n in model.graph.node for o in n.output}
    present = [n for n in names if n in produced]
    del model.graph.output[:]
    model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in present)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), present


def layer_errors(reference: str | os.PathLike, models: dict[str, str | os.PathLike], images: np.ndarray,
                 batch: int = 4) -> dict[str, list[dict[str, Any]]]:
    """Per-layer relative RMS error of each of ``models`` against ``reference`` on ``images``.

    Args:
        reference: the FP32 ONNX.
        models: label -> converted ONNX (FP16 or INT8) of the same export.
        images: ``(N, 3, H, W)`` float32 network input (e.g. the calibration images).
        batch: images per run.

    Returns:
        label -> one dict per reference Conv output: ``layer`` (Darknet index or None), ``tensor``,
        ``rel_error`` and ``sqnr_db`` (None where the converted graph lost that tensor's name).
    """
    import onnx

    ref_model = onnx.load(str(reference), load_external_data=False)
    convs = _conv_outputs(ref_model)
    input_name = next(i.name for i in ref_model.graph.input
                      if i.name not in {t.name for t in ref_model.graph.initializer})
    names = [t for t, _ in convs]
    ref_session, _ = _session_with_outputs(reference, names)
    sessions = {label: _session_with_outputs(path, names) for label, path in models.items()}
    for path, session in [(reference, ref_session)] + [(models[k], s) for k, (s, _) in sessions.items()]:
        hw = session.get_inputs()[0].shape[2:]
        if all(isinstance(d, int) for d in hw) and tuple(hw) != tuple(images.shape[2:]):
            raise FileError(path, f"input is {hw[1]}x{hw[0]}, the images are {images.shape[3]}x{images.shape[2]}: "
                                  "per-layer error needs files of one export (one input size)")
    sq_err = {label: np.zeros(len(names)) for label in models}
    sq_ref = np.zeros(len(names))
    for start in range(0, len(images), batch):
        x = np.ascontiguousarray(images[start:start + batch], dtype=np.float32)
        ref = dict(zip(names, ref_session.run(names, {input_name: x})))
        for i, name in enumerate(names):
            sq_ref[i] += float(np.square(ref[name].astype(np.float64)).sum())
        for label, (session, present) in sessions.items():
            got = dict(zip(present, session.run(present, {input_name: x})))
            for i, name in enumerate(names):
                if name in got:
                    diff = got[name].astype(np.float64) - ref[name]
                    sq_err[label][i] += float(np.square(diff).sum())
    result = {}
    for label, (_, present) in sessions.items():
        rows = []
        for i, (tensor, node) in enumerate(convs):
            match = _LAYER.search(node) or _LAYER.search(tensor)
            rel = math.sqrt(sq_err[label][i] / sq_ref[i]) if tensor in present and sq_ref[i] > 0 else None
            rows.append({"layer": int(match.group(1)) if match else None, "tensor": tensor,
                         "rel_error": rel,
                         "sqnr_db": (-20 * math.log10(rel) if rel else None) if rel is not None else None})
        result[label] = rows
    return result

