"""model/convert.py: Darknet conv arrays <-> the YoloV3 state dict."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from yolov3_trt.darknet.weights import conv_layouts, random_darknet_weights
from yolov3_trt.model.convert import darknet_to_state_dict, state_dict_to_darknet
from yolov3_trt.model.yolov3 import YoloV3


@pytest.fixture(scope="module")
def tiny():
    model = YoloV3.from_cfg("yolov3-tiny").eval()
    return model, random_darknet_weights(model.network, seed=4)


def test_names_map_to_the_conv_block(tiny) -> None:
    model, layers = tiny
    state = darknet_to_state_dict(layers)
    bn_layer = next(c for c in conv_layouts(model.network) if c.batch_normalize).layer
    plain_layer = next(c for c in conv_layouts(model.network) if not c.batch_normalize).layer
    # with BN, Darknet's biases are BN's shift; without, the conv's own bias
    np.testing.assert_array_equal(state[f"layers.{bn_layer}.bn.bias"].numpy(), layers[bn_layer]["biases"])
    np.testing.assert_array_equal(state[f"layers.{bn_layer}.bn.weight"].numpy(), layers[bn_layer]["scales"])
    np.testing.assert_array_equal(state[f"layers.{bn_layer}.bn.running_mean"].numpy(), layers[bn_layer]["rolling_mean"])
    np.testing.assert_array_equal(state[f"layers.{bn_layer}.bn.running_var"].numpy(),
                                  layers[bn_layer]["rolling_variance"])
    np.testing.assert_array_equal(state[f"layers.{bn_layer}.conv.weight"].numpy(), layers[bn_layer]["weights"])
    assert f"layers.{bn_layer}.conv.bias" not in state
    np.testing.assert_array_equal(state[f"layers.{plain_layer}.conv.bias"].numpy(), layers[plain_layer]["biases"])
    assert state[f"layers.{bn_layer}.bn.num_batches_tracked"].item() == 0
    assert f"layers.{plain_layer}.bn.num_batches_tracked" not in state


def test_state_dict_loads_strictly_as_float32_contiguous(tiny) -> None:
    _, layers = tiny
    float64 = {i: {k: np.asfortranarray(v.astype(np.float64)) for k, v in arrays.items()}
               for i, arrays in layers.items()}
    assert not float64[0]["weights"].flags.c_contiguous
    state = darknet_to_state_dict(float64)
    assert all(t.dtype in (torch.float32, torch.long) and t.is_contiguous() for t in state.values())
    fresh = YoloV3.from_cfg("yolov3-tiny")
    fresh.load_state_dict(state, strict=True)  # every key, none extra


def test_round_trip_is_exact(tiny) -> None:
    model, layers = tiny
    model.load_state_dict(darknet_to_state_dict(layers), strict=True)
    back = state_dict_to_darknet(model.state_dict(), model.network)
    assert sorted(back) == sorted(layers)
    for index, arrays in layers.items():
        assert set(back[index]) == set(arrays)
        for name, array in arrays.items():
            assert back[index][name].dtype == np.float32
            np.testing.assert_array_equal(back[index][name], array)


def test_to_darknet_orders_arrays_as_the_file_does(tiny) -> None:
    model, layers = tiny
    model.load_state_dict(darknet_to_state_dict(layers), strict=True)
    back = state_dict_to_darknet(model.state_dict(), model.network)
    for layout in conv_layouts(model.network):
        assert tuple(back[layout.layer]) == layout.keys  # biases first, as read_darknet_weights reads them
        assert back[layout.layer]["weights"].shape == layout.weight_shape
