"""Darknet conv arrays <-> the YoloV3 state dict, as pure functions."""
from __future__ import annotations

import numpy as np
import torch

from ..darknet.layers import Network
from ..darknet.weights import conv_layouts

# Darknet array name -> (submodule, parameter) in a ConvBlock
_NAMES = {
    "weights": ("conv", "weight"),
    "scales": ("bn", "weight"),
    "rolling_mean": ("bn", "running_mean"),
    "rolling_variance": ("bn", "running_var"),
}


def _key(layer: int, name: str, batch_normalize: bool) -> str:
    if name == "biases":  # Darknet's bias is BN's shift when the layer normalises
        return f"layers.{layer}.bn.bias" if batch_normalize else f"layers.{layer}.conv.bias"
    module, param = _NAMES[name]
    return f"layers.{layer}.{module}.{param}"


def darknet_to_state_dict(layers: dict[int, dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Per-layer Darknet arrays (from ``read_darknet_weights``) -> a YoloV3 state dict.

    BN layers also get ``num_batches_tracked`` (0), so the result loads with ``strict=True``.
    """
    state: dict[str, torch.Tensor] = {}
    for index, arrays in layers.items():
        bn = "scales" in arrays
        for name, array in arrays.items():
            state[_key(index, name, bn)] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if bn:
            state[f"layers.{index}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return state


def state_dict_to_darknet(state: dict[str, torch.Tensor], network: Network) -> dict[int, dict[str, np.ndarray]]:
    """A YoloV3 state dict -> per-layer Darknet arrays for ``write_darknet_weights``."""
    out: dict[int, dict[str, np.ndarray]] = {}
    for layout in conv_layouts(network):
        out[layout.layer] = {
            name: state[_key(layout.layer, name, layout.batch_normalize)].detach().cpu().float().numpy()
            for name in layout.keys}
    return out
