"""YoloV3 against OpenCV's independent Darknet importer, and the module's contract."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers import DARKNET, OFFICIAL_CFGS

from yolov3_trt.darknet.weights import random_darknet_weights, write_darknet_weights
from yolov3_trt.errors import DarknetWeightsError
from yolov3_trt.model.yolov3 import YoloV3
from yolov3_trt.preprocess import letterbox, read_image, to_rgb

OPENCV_BN_EPS = 1e-6  # OpenCV's Darknet importer; Darknet's GPU path uses 1e-5
# Inputs kept small for CI time; every cfg here is fully convolutional up to its heads.
TEST_SIZE = {"darknet53": 256}


def _photo_blob(size: int) -> np.ndarray:
    image, _ = letterbox(to_rgb(read_image(DARKNET / "images" / "dog.jpg")), (size, size))
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None])


@pytest.fixture(scope="module")
def opencv_darknet():
    if not hasattr(cv2, "dnn") or not hasattr(cv2.dnn, "readNetFromDarknet"):
        pytest.skip(f"OpenCV {cv2.__version__} has no Darknet importer (install opencv-python-headless<5)")
    return cv2.dnn.readNetFromDarknet


@pytest.mark.parametrize("cfg_path", OFFICIAL_CFGS, ids=lambda p: p.stem)
def test_raw_heads_equal_opencv(cfg_path, tmp_path, opencv_darknet):
    model = YoloV3.from_cfg(cfg_path, bn_eps=OPENCV_BN_EPS).eval()
    weights = tmp_path / "random.weights"
    write_darknet_weights(weights, model.network, random_darknet_weights(model.network, seed=7))
    model.load_darknet_weights(weights)
    blob = _photo_blob(TEST_SIZE.get(cfg_path.stem, 320))

    net = opencv_darknet(str(cfg_path), str(weights))
    net.setInput(blob)
    # OpenCV names a layer "<type>_<darknet index>"; the raw head is the conv before each [yolo].
    names = [f"conv_{head.layer - 1}" for head in model.heads] or [net.getLayerNames()[-1]]
    expected = net.forward(names)
    with torch.no_grad():
        ours = [t.numpy() for t in model(torch.from_numpy(blob))]

    assert len(ours) == len(expected)
    for got, ref in zip(ours, expected):
        ref = ref.reshape(got.shape)
        assert np.isfinite(got).all()
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        assert rel <= 1e-4, f"max relative error {rel:.2e}"


@pytest.mark.parametrize("name, shapes", [
    ("yolov3", [(2, 255, 10, 10), (2, 255, 20, 20), (2, 255, 40, 40)]),
    ("yolov3-tiny", [(2, 255, 10, 10), (2, 255, 20, 20)]),
])
def test_forward_layout(name, shapes):
    model = YoloV3.from_cfg(name).eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, 320, 320))
    assert [tuple(o.shape) for o in outs] == shapes


def test_custom_classes_and_non_square_input():
    model = YoloV3.from_cfg("yolov3-tiny", num_classes=2).eval()
    assert model.num_classes == 2
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 256, 416))
    assert [tuple(o.shape) for o in outs] == [(1, 21, 8, 13), (1, 21, 16, 26)]


def test_darknet_weights_round_trip_through_module(tmp_path):
    model = YoloV3.from_cfg("yolov3-tiny")
    src, out = tmp_path / "in.weights", tmp_path / "out.weights"
    write_darknet_weights(src, model.network, random_darknet_weights(model.network, seed=5))
    model.load_darknet_weights(src).save_darknet_weights(out)
    assert src.read_bytes() == out.read_bytes()


def test_weights_of_other_class_count_fail_cleanly(tmp_path):
    coco = YoloV3.from_cfg("yolov3-tiny")
    path = tmp_path / "coco.weights"
    coco.save_darknet_weights(path)
    with pytest.raises(DarknetWeightsError, match="coco.weights: oversized"):
        YoloV3.from_cfg("yolov3-tiny", num_classes=3).load_darknet_weights(path)


def test_yolo_layer_read_by_route_is_activated():
    from yolov3_trt.darknet.cfg import parse_cfg_text
    text = ("[net]\nwidth=32\nheight=32\n[convolutional]\nfilters=7\nsize=1\nactivation=linear\n"
            "[yolo]\nmask=0\nanchors=4,4\nclasses=2\nnum=1\n[route]\nlayers=-1\n")
    model = YoloV3(parse_cfg_text(text)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        raw = model.layers[0](x)
        saved = model.layers[1](raw)
    assert torch.allclose(saved[:, :2], raw[:, :2].sigmoid())
    assert torch.equal(saved[:, 2:4], raw[:, 2:4])
    assert torch.allclose(saved[:, 4:], raw[:, 4:].sigmoid())
