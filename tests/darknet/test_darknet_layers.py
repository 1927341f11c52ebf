"""Darknet defaults, shapes and the published FLOP counts."""
from __future__ import annotations

import pytest
from conftest import DARKNET

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
