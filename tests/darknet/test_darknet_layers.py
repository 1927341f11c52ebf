"""Darknet defaults, shapes and the published FLOP counts."""
from __future__ import annotations

import pytest
from helpers import DARKNET

from yolov3_trt.darknet.cfg import parse_cfg, parse_cfg_text
from yolov3_trt.darknet.layers import ConvSpec, MaxPoolSpec, YoloSpec, build_network

# Darknet's own printout (``darknet detector test``): total BFLOPs per cfg and input size.
DARKNET_BFLOPS = [
    ("yolov3", 320, 38.973), ("yolov3", 416, 65.864), ("yolov3", 608, 140.692),
    ("yolov3-tiny", 416, 5.565), ("yolov3-spp", 608, 141.449), ("darknet53", 256, 18.570),
]


@pytest.mark.parametrize("name, size, bflops", DARKNET_BFLOPS)
def test_bflops_equal_darknet(name, size, bflops):
    network = build_network(parse_cfg(DARKNET / "cfg" / f"{name}.cfg"))
    total = sum(s.bflops for s in network.shapes(size, size))
    assert total == pytest.approx(bflops, abs=0.01)


@pytest.mark.parametrize("name, layers, heads", [
    ("yolov3", 107, [(19, 19), (38, 38), (76, 76)]),
    ("yolov3-tiny", 24, [(13, 13), (26, 26)]),
    ("yolov3-spp", 114, [(19, 19), (38, 38), (76, 76)]),
    ("darknet53", 78, []),
])
def test_layer_counts_and_head_grids(name, layers, heads):
    network = build_network(parse_cfg(DARKNET / "cfg" / f"{name}.cfg"))
    shapes = network.shapes()
    assert len(network.layers) == layers
    assert [shapes[h.layer].output[1:] for h in network.heads()] == heads


def test_darknet_defaults():
    net = build_network(parse_cfg_text(
        "[net]\nwidth=64\nheight=64\n[convolutional]\n[maxpool]\nstride=2\n[maxpool]\n"
        "[convolutional]\nfilters=25\n[yolo]\nanchors=1,2\n"))
    conv, pool2, pool1, _, yolo = net.layers
    assert conv == ConvSpec(filters=1, size=1, stride=1, padding=0, groups=1, batch_normalize=False,
                            activation="logistic")
    assert pool2 == MaxPoolSpec(size=2, stride=2, padding=1)
    assert pool1 == MaxPoolSpec(size=1, stride=1, padding=0)
    assert isinstance(yolo, YoloSpec)
    assert (yolo.classes, yolo.num, yolo.mask, yolo.ignore_thresh, yolo.truth_thresh, yolo.jitter) == (
        20, 1, (0,), 0.5, 1.0, 0.2)


def test_tiny_stride1_maxpool_keeps_size():
    network = build_network(parse_cfg(DARKNET / "cfg" / "yolov3-tiny.cfg"))
    shapes = network.shapes(416, 416)
    assert shapes[11].input == shapes[11].output == (512, 13, 13)


def test_padding_without_pad_flag():
    net = build_network(parse_cfg_text("[net]\nwidth=32\nheight=32\n[convolutional]\nsize=3\npadding=2\n"))
    assert net.shapes()[0].output == (1, 34, 34)


TINY_NET = "[net]\nwidth={w}\nheight={h}\nchannels={c}\n[convolutional]\nfilters={f}\nsize=3\npad=1\n"
# what would not fit -> (cfg text, size given to shapes or None, words of the one-line CfgError)
TOO_LARGE = {
    "net width": (TINY_NET.format(w=99999968, h=416, c=3, f=16), None,
                  "big.cfg:2: [net] width=99999968 must be <= 8192 px, the largest input side yolov3_trt runs"),
    "net height": (TINY_NET.format(w=416, h=8224, c=3, f=16), None, "big.cfg:3: [net] height=8224 must be <= 8192"),
    "size asked": (TINY_NET.format(w=416, h=416, c=3, f=16), (99999968, 416),
                   "big.cfg: input 99999968x416 is too large: each side must be at most 8192 px"),
    "conv weights": (TINY_NET.format(w=64, h=64, c=3, f=2_000_000_000), None,
                     "big.cfg:5: layer 0 [convolutional] at input 64x64: weights 2000000000x3x3x3 = "
                     "54,000,000,000 values exceed 2,147,483,647"),
    "layer output": (TINY_NET.format(w=8192, h=8192, c=3, f=32), None,
                     "layer 0 [convolutional] at input 8192x8192: output 32x8192x8192 = 2,147,483,648 values per "
                     "image exceed 2,147,483,647"),
    "input channels": (TINY_NET.format(w=8192, h=8192, c=64, f=1), None,
                       "big.cfg: input 8192x8192x64 = 4,294,967,296 values per image exceed 2,147,483,647"),
    "activations": (TINY_NET.format(w=8192, h=8192, c=3, f=16) + "[convolutional]\nfilters=16\n" * 20, None,
                    "big.cfg: at input 8192x8192 the layer outputs of one image take 84.0 GiB (float32), over the "
                    "64 GiB limit"),
    "weights total": (TINY_NET.format(w=32, h=32, c=3, f=30000) + "[convolutional]\nfilters=30000\nsize=1\n", None,
                      "big.cfg: 900,870,000 weights (3.4 GiB as float32) exceed 536,870,912 (2 GiB, the most one "
                      "ONNX file holds)"),
}


@pytest.mark.parametrize("case", TOO_LARGE)
def test_networks_too_large_to_run_are_refused_with_the_numbers(case):
    """Refused by arithmetic on the shapes alone, before anything is allocated (issue #13)."""
    from yolov3_trt.errors import CfgError

    text, size, words = TOO_LARGE[case]
    with pytest.raises(CfgError) as err:
        network = build_network(parse_cfg_text(text, "big.cfg"))
        network.shapes(*(size or ()))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_limits_leave_real_models_alone():
    from yolov3_trt.darknet.builtin import load_cfg

    network = build_network(load_cfg("yolov3"))
    assert network.activation_bytes(608, 608) == pytest.approx(0.45 * 2**30, rel=0.02)
    assert len(network.shapes(4096, 4096)) == 107  # 20.6 GiB of outputs: large, but allowed
    assert len(build_network(load_cfg("yolov3-tiny")).shapes(8192, 8192)) == 24
