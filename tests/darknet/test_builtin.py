"""Built-in cfgs equal the official files; class count and anchors edits."""
from __future__ import annotations

import pytest
from helpers import DARKNET

from yolov3_trt.darknet.builtin import BUILTIN_MODELS, builtin_cfg, load_cfg, set_anchors, set_classes
from yolov3_trt.darknet.cfg import format_cfg, parse_cfg, parse_cfg_text
from yolov3_trt.darknet.layers import YoloSpec, build_network
from yolov3_trt.errors import CfgError, FileError


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_equals_official_layer_by_layer(name):
    ours = build_network(load_cfg(name))
    official = build_network(parse_cfg(DARKNET / "cfg" / f"{name}.cfg"))
    assert ours.net == official.net
    assert len(ours.layers) == len(official.layers)
    for index, (a, b) in enumerate(zip(ours.layers, official.layers)):
        assert a == b, f"layer {index}"
    # the same tensors, so official .weights files load into the built-ins
    assert [s.output for s in ours.shapes()] == [s.output for s in official.shapes()]


@pytest.mark.parametrize("name", sorted(BUILTIN_MODELS))
def test_builtin_text_parses_back(name):
    cfg = load_cfg(name)
    assert build_network(parse_cfg_text(format_cfg(cfg))).layers == build_network(cfg).layers


@pytest.mark.parametrize("name, heads", [("yolov3", 3), ("yolov3-tiny", 2), ("yolov3-spp", 3)])
def test_custom_classes_resize_heads(name, heads):
    network = build_network(builtin_cfg(name, classes=3))
    shapes = network.shapes()
    assert len(network.heads()) == heads
    for head in network.heads():
        assert head.classes == 3
        assert shapes[head.layer].output[0] == 3 * (3 + 5)


def test_custom_anchors():
    anchors = [(i + 1.0, 2.0 * i + 1.5) for i in range(6)]
    network = build_network(builtin_cfg("yolov3-tiny", anchors=anchors))
    assert [h.anchors for h in network.heads()] == [tuple(anchors[3:]), tuple(anchors[:3])]


def test_set_classes_on_official_voc_cfg():
    voc = build_network(set_classes(parse_cfg(DARKNET / "cfg" / "yolov3-voc.cfg"), 80))
    coco = build_network(load_cfg("yolov3"))
    # same architecture; the training-only ignore_thresh differs (.5 in the VOC cfg)
    assert [s.output for s in voc.shapes(416, 416)] == [s.output for s in coco.shapes(416, 416)]
    assert voc.heads() == coco.heads()


def test_wrong_anchor_count_is_an_error():
    with pytest.raises(CfgError, match="2 anchors given but \\[yolo\\] has num=9"):
        set_anchors(load_cfg("yolov3"), [(1, 1), (2, 2)])


def test_classes_on_cfg_without_yolo_is_an_error():
    with pytest.raises(CfgError, match="darknet53.cfg: has no \\[yolo\\] layer"):
        set_classes(parse_cfg(DARKNET / "cfg" / "darknet53.cfg"), 3)


def test_unknown_name():
    with pytest.raises(FileError, match="yolov9: no such cfg file, nor a built-in model"):
        load_cfg("yolov9")


def test_yolo_spec_values():
    yolo = [s for s in build_network(load_cfg("yolov3")).layers if isinstance(s, YoloSpec)][0]
    assert (yolo.ignore_thresh, yolo.truth_thresh, yolo.jitter, yolo.random) == (0.7, 1.0, 0.3, True)
