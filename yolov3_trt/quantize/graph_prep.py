"""Graph rewrites that make an exported YOLOv3 quantizable, without changing what it computes.

Darknet's maxpool pads with -inf (``Pad(value=-inf) -> MaxPool``, see ``model/layers.py``). An
activation range over a tensor holding -inf is infinite, so calibration fails on it (ONNX
Runtime's histograms raise; ModelOpt and AutoCast keep the node out). ``MaxPool``'s own ``pads``
attribute means exactly that padding (padded cells never win the max), so each such pair becomes
one ``MaxPool`` with ``pads``: the same function, and a graph TensorRT fuses better too.
"""
from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)


def _constant_values(model, names: list[str]) -> dict[str, np.ndarray]:
    """Values of input-independent tensors ``names``: initializers, else one ONNX Runtime run on zeros."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    values = {n: inits[n] for n in names if n in inits}
    missing = [n for n in names if n not in values and n]
    if missing:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in missing)
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {}
        for inp in session.get_inputs():
            shape = [d if isinstance(d, int) else 1 for d in inp.shape]
            feed[inp.name] = np.zeros(shape, np.float32)
        values.update(zip(missing, session.run(missing, feed)))
    return values


def fold_inf_pads(model) -> int:
    """Fold every ``Pad(constant -inf, spatial only) -> MaxPool`` into the MaxPool's ``pads``, in place.

    Returns how many pairs were folded. A Pad whose output feeds anything else is left alone.
    """
    import onnx

    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    pads = [n for n in model.graph.node if n.op_type == "Pad" and len(n.input) >= 3 and n.input[2]
            and all(c.op_type == "MaxPool" for c in consumers.get(n.output[0], []))
            and consumers.get(n.output[0])
            and onnx.helper.get_attribute_value(next((a for a in n.attribute if a.name == "mode"), None) or
                                                onnx.helper.make_attribute("mode", "constant"))
                in (b"constant", "constant")]
    if not pads:
        return 0
    values = _constant_values(model, sorted({n for p in pads for n in (p.input[1], p.input[2])}))
    folded = 0
    for pad in pads:
        amounts = np.asarray(values[pad.input[1]]).astype(np.int64).ravel()
        fill = float(np.asarray(values[pad.input[2]]).ravel()[0])
        rank = len(amounts) // 2
        if fill != -math.inf or rank != 4 or amounts[:2].any() or amounts[4:6].any() or (amounts < 0).any():
            continue
        top, left, bottom, right = int(amounts[2]), int(amounts[3]), int(amounts[6]), int(amounts[7])
        for pool in consumers[pad.output[0]]:
            old = next((a for a in pool.attribute if a.name == "pads"), None)
            auto = next((a for a in pool.attribute if a.name == "auto_pad"), None)
            if (old is not None and any(old.ints)) or (auto is not None and auto.s not in (b"", b"NOTSET")):
                break
        else:
            for pool in consumers[pad.output[0]]:
                kept = [a for a in pool.attribute if a.name not in ("pads", "auto_pad")]
                del pool.attribute[:]
                pool.attribute.extend(kept + [onnx.helper.make_attribute("pads", [top, left, bottom, right])])
                pool.input[0] = pad.input[0]
            model.graph.node.remove(pad)
            folded += 1
    if folded:
        logger.debug("folded %d -inf Pad nodes into MaxPool pads", folded)
    return folded
