"""Starting weights for training: from scratch, Darknet weights (full or backbone), a checkpoint.

A different class count keeps everything but the heads (the 1x1 convs before each [yolo]
layer), which start fresh: the usual fine-tuning recipe.
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

from ..darknet.builtin import set_classes
from ..darknet.layers import ConvSpec, YoloSpec, build_network
from ..darknet.weights import expected_size, read_darknet_weights, read_header
from ..errors import DarknetWeightsError
from ..model.convert import darknet_to_state_dict
from ..model.yolov3 import YoloV3

logger = logging.getLogger(__name__)

OBJECTNESS_PRIOR = 0.01  # a fresh head predicts "no object" with p = 0.01 (stable early training)


def head_layers(model: YoloV3) -> list[int]:
    """Indices of the convs that feed [yolo] layers: the class-count-dependent ones."""
    return [i - 1 for i, spec in enumerate(model.network.layers)
            if isinstance(spec, YoloSpec) and isinstance(model.network.layers[i - 1], ConvSpec)]


@torch.no_grad()
def init_heads(model: YoloV3) -> None:
    """Fresh heads: small weights, objectness bias at the prior, other biases 0."""
    for head, spec in zip(head_layers(model), (s for s in model.network.layers if isinstance(s, YoloSpec))):
        conv = model.layers[head].conv
        torch.nn.init.normal_(conv.weight, 0.0, 0.01)
        conv.bias.zero_()
        conv.bias[4::spec.classes + 5] = math.log(OBJECTNESS_PRIOR / (1 - OBJECTNESS_PRIOR))


def _file_classes(path: Path, model: YoloV3) -> int | None:
    """The class count a full .weights file of this cfg was written for, if its size fits one."""
    size, header = path.stat().st_size, read_header(path)
    base = expected_size(model.network, header)
    step = expected_size(build_network(set_classes(model.cfg.copy(), model.num_classes + 1)), header) - base
    if step <= 0 or (size - base) % step:
        return None
    classes = model.num_classes + (size - base) // step
    return classes if classes >= 1 else None


def load_pretrained(model: YoloV3, path: str | os.PathLike) -> str:
    """Load what fits from ``path`` into ``model`` (heads re-initialised if classes differ).

    Darknet ``.weights``: the full network, a backbone prefix, or the full network for another
    class count; a ``.pt`` checkpoint of ours: every tensor whose name and shape match. Returns
    a one-line description of what was loaded.
    """
    path = Path(path)
    init_heads(model)
    if path.suffix in (".pt", ".pth"):
        from ..model.checkpoint import load_checkpoint
        source, _, _ = load_checkpoint(path)
        state = source.state_dict()
        own = model.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fits, strict=False)
        return f"{path.name}: {len(fits)}/{len(own)} tensors loaded" + (
            "; heads re-initialised" if len(fits) < len(own) else "")
    try:
        _, layers = read_darknet_weights(path, model.network, prefix=True)
        heads_skipped = False
    except DarknetWeightsError:
        classes = _file_classes(path, model)
        if classes is None:
            raise
        other = build_network(set_classes(model.cfg.copy(), classes))
        _, layers = read_darknet_weights(path, other)
        for head in head_layers(model):
            layers.pop(head, None)
        heads_skipped = True
        logger.info("%s holds %d classes, the model %d: heads re-initialised", path, classes, model.num_classes)
    model.load_state_dict(darknet_to_state_dict(layers), strict=False)
    convs = sum(isinstance(s, ConvSpec) for s in model.network.layers)
    text = f"{path.name}: {len(layers)}/{convs} conv layers loaded"
    return text + ("; heads re-initialised" if heads_skipped else "")
